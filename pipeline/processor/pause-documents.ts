/**
 * Which open chats of one partition's accounts have a pause document, so that finishing a chat that never
 * paused costs no write. Exact for chats opened since their account was loaded; a chat already open in a
 * loaded account may have paused under an earlier owner, so it counts as having one.
 */
export class PauseDocuments {
  private readonly byAccount = new Map<string, Set<string>>();

  loaded(accountKey: string, openChats: Readonly<Record<string, unknown>>): void {
    for (const chatId of Object.keys(openChats)) this.written(accountKey, chatId);
  }

  has(accountKey: string, chatId: string): boolean {
    return this.byAccount.get(accountKey)?.has(chatId) ?? false;
  }

  written(accountKey: string, chatId: string): void {
    let chats = this.byAccount.get(accountKey);
    if (chats === undefined) {
      chats = new Set();
      this.byAccount.set(accountKey, chats);
    }
    chats.add(chatId);
  }

  /** A finished chat leaves its account's state: nothing more will be written for it. */
  finished(accountKey: string, chatId: string): void {
    this.byAccount.get(accountKey)?.delete(chatId);
  }

  /** The account left memory: what is known of it is loaded again with it. */
  forget(accountKey: string): void {
    this.byAccount.delete(accountKey);
  }

  clear(): void {
    this.byAccount.clear();
  }
}
