/*
 * Runs the ClickHouse engine inside libchdb.so as a long-lived HTTP/TCP server.
 *
 * libchdb exports chdb_query_cmdline(argc, argv), which is clickhouse-local's main. Given
 * --listen_host/--http_port/--tcp_port and a query that starts the listeners and then blocks
 * reading a FIFO, it serves clients until a line is written to that FIFO (see clickhouse.ts).
 * Calling it through an FFI package from node failed on stack depth, hence this loader.
 *
 * argv is passed through untouched so the flags live in one place, clickhouse.ts.
 */
#include <stddef.h>
#include <stdio.h>

struct chdb_result;
extern struct chdb_result *chdb_query_cmdline(int argc, char **argv);
extern const char *chdb_result_error(struct chdb_result *result);
extern char *chdb_result_buffer(struct chdb_result *result);
extern size_t chdb_result_length(struct chdb_result *result);

int main(int argc, char **argv) {
  struct chdb_result *result = chdb_query_cmdline(argc, argv);
  if (result == NULL) {
    fprintf(stderr, "chdb-server: chdb_query_cmdline returned no result\n");
    return 2;
  }
  const char *error = chdb_result_error(result);
  if (error != NULL && error[0] != '\0') {
    fprintf(stderr, "chdb-server: %s\n", error);
    return 1;
  }
  size_t length = chdb_result_length(result);
  if (length > 0) {
    fwrite(chdb_result_buffer(result), 1, length, stdout);
  }
  return 0;
}
