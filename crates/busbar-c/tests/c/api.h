/*
 * api.h: what the parts of the C API test (api.c and api_*.c) share: the
 * checks (each failure reported with its file and line), helpers, and the
 * test functions main() runs. See api.c for what the test covers.
 */
#ifndef BUSBAR_API_TEST_H
#define BUSBAR_API_TEST_H

#define _GNU_SOURCE

#include <busbar.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long to wait for something that must happen (a failure bound only). */
#define GUARD_MS 30000
/* A wait that is meant to time out. */
#define SHORT_MS 50

#define NAME_BIND_EVENT "$.KBUS.ReplierBindEvent"

/* ----- checks and helpers (api_support.c) ------------------------------ */

extern int n_checks, n_failed;
extern pthread_mutex_t check_lock;
extern int is_daemon;
extern char tmpdir[64];
extern const busbar_msg_id NO_ID;

void record(const char *file, int line, int ok, const char *what, const char *got, const char *want);
void rc_text(char *buf, size_t n, long long rc);
void check_rc_(const char *file, int line, const char *what, long long got, long long want);
void check_num_(const char *file, int line, const char *what, unsigned long long got, unsigned long long want);
void check_true_(const char *file, int line, const char *what, int cond);
void check_str_(const char *file, int line, const char *what, const char *got, const char *want);
void check_data_(const char *file, int line, const char *what, const busbar_message *m, const char *want);
void check_id_(const char *file, int line, const char *what, busbar_msg_id got, busbar_msg_id want);
void must_(const char *file, int line, const char *what, int rc);
busbar_endpoint *open_ep(const busbar_bus *bus);
void close_ep(busbar_endpoint *ep);
const uint8_t *bytes(const char *s);
int announce(const busbar_endpoint *ep, const char *name, const char *data, busbar_msg_id *id);
busbar_message *take_(const char *file, int line, busbar_endpoint *ep, const char *what);
void take_named_(const char *file, int line, busbar_endpoint *ep, const char *name);
void check_empty_(const char *file, int line, busbar_endpoint *ep, const char *what);
busbar_endpoint_stats ep_stats(const busbar_endpoint *ep);
int readable(const busbar_endpoint *ep, int timeout_ms);
uint32_t le32(const uint8_t *p);
char *long_name(size_t len);
void ms_sleep(int ms);
long long now_ms(void);
void remove_tmpdir(void);

#define CHECK_RC(what, got, want) check_rc_(__FILE__, __LINE__, what, (got), (want))
#define CHECK_NUM(what, got, want) \
    check_num_(__FILE__, __LINE__, what, (unsigned long long)(got), (unsigned long long)(want))
#define CHECK(what, cond) check_true_(__FILE__, __LINE__, what, (cond) != 0)
#define CHECK_STR(what, got, want) check_str_(__FILE__, __LINE__, what, (got), (want))
#define CHECK_DATA(what, m, want) check_data_(__FILE__, __LINE__, what, (m), (want))
#define CHECK_ID(what, got, want) check_id_(__FILE__, __LINE__, what, (got), (want))
#define MUST(what, rc) must_(__FILE__, __LINE__, what, (rc))
#define TAKE(ep, what) take_(__FILE__, __LINE__, (ep), (what))
#define TAKE_NAMED(ep, name) take_named_(__FILE__, __LINE__, (ep), (name))
#define CHECK_EMPTY(ep, what) check_empty_(__FILE__, __LINE__, (ep), (what))

/* ----- the handshake timeout check (api_errors.c) ------------------------ */

struct timeout_job {
    char path[128];
    int listener;
    int rc;
    long long took_ms;
};

pthread_t start_timeout_check(struct timeout_job *job);
void finish_timeout_check(pthread_t t, struct timeout_job *job);

/* ----- the tests, one function each (run by main, in api.c) -------------- */

void test_errors(void);
void test_connect(const char *socket_path);
busbar_bus *test_bus(busbar_bus *bus0);
void test_bus_settings(busbar_bus *bus);
void test_find_replier(busbar_bus *bus);
void test_names_and_stats(busbar_bus *bus);
void test_endpoints(busbar_bus *bus);
void test_bind(busbar_bus *bus);
void test_send_struct(busbar_bus *bus);
void test_send_errors(busbar_bus *bus);
void test_all_or_wait(busbar_bus *bus);
void test_batch(busbar_bus *bus);
void test_call(busbar_bus *bus);
void test_reply_then_recv(busbar_bus *bus);
void test_recv(busbar_bus *bus);
void test_readiness(busbar_bus *bus);
void test_batch_recv_and_kbus(busbar_bus *bus);
void test_settings(busbar_bus *bus);
void test_bind_events(busbar_bus *bus);
void test_endpoint_stats(busbar_bus *bus);
void test_nodes(busbar_bus *bus);
void test_fds(busbar_bus *bus);
void test_null_message(void);

#endif
