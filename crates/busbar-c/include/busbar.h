/*
 * busbar.h: the C API of busbar, a message bus for Linux with kernel-grade
 * guarantees. Generated from crates/busbar-c by cbindgen: do not edit.
 *
 * Conventions (they hold for every function unless its comment says
 * otherwise):
 *
 * - Functions return 0 (or a documented non-negative value) on success and
 *   a negative errno on failure: -EADDRNOTAVAIL, -EBUSY, ... with the same
 *   numbers as Linux and as busbar::Errno in Rust. busbar_strerror() says
 *   what one means. A NULL pointer where an object is required is -EINVAL.
 *   A failed call changes nothing on the bus.
 * - Objects are opaque and owned by the caller once returned: free a bus
 *   with busbar_bus_free(), close an endpoint with busbar_endpoint_close(),
 *   free a message with busbar_message_free(). Pointers a message hands
 *   out (its name, data, handles) live as long as the message.
 * - Buses and endpoints may be used from several threads at once; a
 *   message may be read from several threads but freed by one.
 * - Out pointers (arguments a result is stored through) are required
 *   unless the comment calls them optional: a NULL required one is -EINVAL,
 *   found before anything is done.
 * - Timeouts are in milliseconds: a negative one waits forever, 0 does not
 *   wait. Only the functions whose comment says so block.
 * - Every transport (in-process or a busbar daemon) behaves the same.
 * - No Rust panic crosses into C: a bug in busbar returns -EIO instead.
 */


#ifndef BUSBAR_H
#define BUSBAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


/**
 * The message is a request.
 */
#define BUSBAR_WANT_A_REPLY 1

/**
 * Set by the bus on the replier's copy of a request.
 */
#define BUSBAR_WANT_YOU_TO_REPLY 2

/**
 * Set by the bus on the messages it makes itself (`$.KBUS.*`).
 */
#define BUSBAR_SYNTHETIC 4

/**
 * Delivered to the front of each recipient's queue.
 */
#define BUSBAR_URGENT 8

/**
 * All recipients or none; if a queue is full the send waits for room
 * (`-EAGAIN`, pending: see busbar_send_wait).
 */
#define BUSBAR_ALL_OR_WAIT 256

/**
 * All recipients or none; if a queue is full the send fails (`-EBUSY`).
 */
#define BUSBAR_ALL_OR_FAIL 512

/**
 * The most file descriptors one message may carry.
 */
#define BUSBAR_MAX_FDS_PER_MESSAGE 253

/**
 * The longest name.
 */
#define BUSBAR_MAX_NAME_LEN 1000

/**
 * A bus: in-process, or one bus of a busbar daemon. Opaque.
 */
typedef struct busbar_bus busbar_bus;

/**
 * An open endpoint (KBUS's Ksock): one connection to a bus. Opaque.
 */
typedef struct busbar_endpoint busbar_endpoint;

/**
 * A received message. Opaque: read it with the busbar_message_*
 * functions; free it with busbar_message_free().
 */
typedef struct busbar_message busbar_message;

/**
 * A bus's settings.
 */
typedef struct busbar_bus_info {
  /**
   * The bus.
   */
  uint32_t bus;
  /**
   * Buses in its kernel (ids 0 .. buses-1).
   */
  uint32_t buses;
  /**
   * Maximum message size (name plus data bytes).
   */
  uint32_t max_message_size;
  /**
   * The most it may be set to.
   */
  uint32_t absolute_max_message_size;
  /**
   * Replier bind events are on.
   */
  bool replier_bind_events;
} busbar_bus_info;

/**
 * A bus's counters.
 */
typedef struct busbar_bus_stats {
  /**
   * The bus.
   */
  uint32_t bus;
  /**
   * Open endpoints.
   */
  uint32_t endpoints;
  /**
   * Bindings.
   */
  uint32_t bindings;
  /**
   * Replier bindings.
   */
  uint32_t replier_bindings;
  /**
   * The serial the next message will get.
   */
  uint32_t next_serial;
  /**
   * Maximum message size.
   */
  uint32_t max_message_size;
  /**
   * Replier bind events are on.
   */
  bool replier_bind_events;
  /**
   * Unbind events in the set-aside list.
   */
  uint32_t set_aside;
} busbar_bus_stats;

/**
 * A message id: `{network, serial}`; `{0, 0}` is none.
 */
typedef struct busbar_msg_id {
  /**
   * 0 for messages sent on this bus; set by bridges.
   */
  uint32_t network;
  /**
   * The bus's serial number (from 1).
   */
  uint32_t serial;
} busbar_msg_id;

/**
 * Statistics of one endpoint.
 */
typedef struct busbar_endpoint_stats {
  /**
   * The endpoint.
   */
  uint32_t id;
  /**
   * Its owner's pid, uid.
   */
  uint32_t pid;
  /**
   * (uid)
   */
  uint32_t uid;
  /**
   * Messages queued.
   */
  uint32_t queued;
  /**
   * Replier bind events set aside for it.
   */
  uint32_t set_aside;
  /**
   * Its queue limit.
   */
  uint32_t queue_limit;
  /**
   * Messages it lost because its queue was full.
   */
  uint64_t lost;
  /**
   * Messages sent.
   */
  uint64_t sent;
  /**
   * Messages taken.
   */
  uint64_t received;
  /**
   * Requests sent whose reply has not arrived.
   */
  uint32_t outstanding_requests;
  /**
   * Requests taken as replier and not answered.
   */
  uint32_t owed_replies;
  /**
   * Bindings held.
   */
  uint32_t bindings;
  /**
   * "Only once" is on.
   */
  bool only_once;
  /**
   * An `ALL_OR_WAIT` send waits for room.
   */
  bool has_pending_send;
  /**
   * Its id, if so.
   */
  struct busbar_msg_id pending_send;
  /**
   * Bytes of queued messages.
   */
  uint64_t queued_bytes;
  /**
   * Handles held.
   */
  uint32_t handles;
  /**
   * Live nodes owned.
   */
  uint32_t nodes;
  /**
   * The id of its last send.
   */
  struct busbar_msg_id last_sent;
} busbar_endpoint_stats;

/**
 * One binding (busbar_bus_names).
 */
typedef struct busbar_binding {
  /**
   * The endpoint that bound.
   */
  uint32_t endpoint;
  /**
   * Its owner's pid.
   */
  uint32_t pid;
  /**
   * Its owner's uid.
   */
  uint32_t uid;
  /**
   * Replier (true) or listener.
   */
  bool replier;
  /**
   * The name or pattern (freed with the array).
   */
  char *name;
} busbar_binding;

/**
 * A bus's quota per (receiving user, sending user).
 */
typedef struct busbar_quota {
  /**
   * Messages queued.
   */
  uint32_t messages;
  /**
   * Their bytes.
   */
  uint64_t bytes;
  /**
   * Handles held.
   */
  uint32_t handles;
  /**
   * File descriptors in queued messages.
   */
  uint32_t fds;
} busbar_quota;

/**
 * Who originally sent a message, or is its final target, across bridges.
 */
typedef struct busbar_orig_from {
  /**
   * The network id of the bus.
   */
  uint32_t network;
  /**
   * The endpoint there.
   */
  uint32_t local;
} busbar_orig_from;

/**
 * A message to send. Zero-initialise it (`busbar_outgoing m = {0};`), then
 * set what you need: with only `name` (and `data`) it is an announcement.
 * Nothing is kept after the call returns: the bus copies the data, and
 * duplicates the fds (you keep and close yours).
 */
typedef struct busbar_outgoing {
  /**
   * The name (`$.a.b`, no wildcard), NUL-terminated. Required.
   */
  const char *name;
  /**
   * The data (`data_len` bytes; NULL if 0).
   */
  const uint8_t *data;
  /**
   * Bytes of data.
   */
  size_t data_len;
  /**
   * `BUSBAR_WANT_A_REPLY` (a request), `BUSBAR_URGENT`,
   * `BUSBAR_ALL_OR_WAIT` or `BUSBAR_ALL_OR_FAIL`, and bits 16..31 for
   * the application (carried unchanged).
   */
  uint32_t flags;
  /**
   * A stateful request: the replier endpoint it must reach. A reply: the
   * requester.
   */
  uint32_t to;
  /**
   * A reply: the id of the request it answers.
   */
  struct busbar_msg_id in_reply_to;
  /**
   * Forwarded messages only (privileged): the id to keep.
   */
  struct busbar_msg_id id;
  /**
   * Carried unchanged.
   */
  struct busbar_orig_from orig_from;
  /**
   * Carried unchanged.
   */
  struct busbar_orig_from final_to;
  /**
   * Send to these nodes (our handles to them) instead of by name.
   */
  const uint64_t *to_handles;
  /**
   * How many `to_handles`.
   */
  size_t to_handle_count;
  /**
   * Handles every receiver gets its own handle to.
   */
  const uint64_t *handles;
  /**
   * How many `handles`.
   */
  size_t handle_count;
  /**
   * File descriptors every receiver gets its own copy of (at most
   * `BUSBAR_MAX_FDS_PER_MESSAGE`).
   */
  const int *fds;
  /**
   * How many `fds`.
   */
  size_t fd_count;
} busbar_outgoing;

/**
 * Credentials the bus stamped on a message (its sender cannot forge them).
 */
typedef struct busbar_creds {
  /**
   * Process id.
   */
  uint32_t pid;
  /**
   * User id.
   */
  uint32_t uid;
  /**
   * Group id.
   */
  uint32_t gid;
} busbar_creds;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Makes a new in-process bus (bus 0 of a kernel in this process, no daemon
 * needed). Free it with busbar_bus_free(). Errors: -EINVAL (out is NULL).
 */
int busbar_bus_in_process(struct busbar_bus **out);

/**
 * Connects to a busbar daemon: at `socket_path`, or, if it is NULL, at the
 * default path ($BUSBAR_SOCKET, $XDG_RUNTIME_DIR/busbar/bus.sock,
 * /tmp/busbar-<uid>/bus.sock). The result is bus 0; see busbar_bus_select.
 * Blocks for the handshake (at most 10 s). Errors: -ENOENT or
 * -ECONNREFUSED (no daemon there), -EACCES (the daemon runs as a user this
 * process does not trust; see BUSBAR_TRUSTED_UIDS), -EPERM (no permission
 * to the socket), -ETIMEDOUT (no answer), -EUSERS, -ENFILE, -EMFILE (the
 * daemon refused the connection), -ECONNRESET (the connection failed or
 * was closed, or the path is too long for a socket), -EBADMSG (the path is
 * not UTF-8), -EPROTO, -EOPNOTSUPP (not a busbar daemon, or another
 * protocol version), -EINVAL.
 */
int busbar_bus_connect(const char *socket_path, struct busbar_bus **out);

/**
 * Frees a bus handle (NULL is ignored). Endpoints opened from it stay
 * usable; the connection closes when the last of them is closed.
 */
void busbar_bus_free(struct busbar_bus *bus);

/**
 * The bus's id (0 for NULL).
 */
uint32_t busbar_bus_id(const struct busbar_bus *bus);

/**
 * A handle on bus `id` of the same kernel or daemon (free it with
 * busbar_bus_free). Errors: -EINVAL; using a bus that does not exist
 * fails later with -ENOENT.
 */
int busbar_bus_select(const struct busbar_bus *bus, uint32_t id, struct busbar_bus **out);

/**
 * Creates a new bus in the same kernel and returns a handle on it.
 * Through a daemon this is a privileged operation. Errors: -EPERM (not
 * privileged), -ENOMEM (the kernel holds as many buses as it may),
 * -EINVAL.
 */
int busbar_bus_create(const struct busbar_bus *bus, struct busbar_bus **out);

/**
 * Sets the bus's maximum message size (name plus data bytes; at least
 * 100, at most the absolute maximum); `*previous` (if not NULL) gets the
 * old value (`previous` is optional). Privileged through a daemon.
 * Errors: -EINVAL (out of range), -EPERM, -ENOENT (no such bus).
 */
int busbar_bus_set_max_message_size(const struct busbar_bus *bus,
                                    uint32_t bytes,
                                    uint32_t *previous);

/**
 * The endpoint a request to `name` would reach now (wildcards resolved):
 * `*endpoint` is its id, or 0 if there is no replier. Errors: -EBADMSG
 * (not a message name), -ENAMETOOLONG, -ENOENT, -EINVAL.
 */
int busbar_bus_find_replier(const struct busbar_bus *bus, const char *name, uint32_t *endpoint);

/**
 * The replier bound to exactly the pattern `pattern` (no wildcard
 * resolution, unlike busbar_bus_find_replier): `*endpoint` is its id, or
 * 0. Errors: -EBADMSG (not a valid pattern), -ENAMETOOLONG, -ENOENT,
 * -EINVAL.
 */
int busbar_bus_pattern_replier(const struct busbar_bus *bus,
                               const char *pattern,
                               uint32_t *endpoint);

/**
 * The bus's settings. Errors: -ENOENT (no such bus), -EINVAL.
 */
int busbar_bus_get_info(const struct busbar_bus *bus, struct busbar_bus_info *info);

/**
 * The bus's counters in `*stats`, and the statistics of up to `capacity`
 * of its endpoints (by id) in `endpoints` (optional: may be NULL if
 * `capacity` is 0); returns how many endpoints the bus has (so a second
 * call with a big enough array gets them all). Errors: -ENOENT, -EINVAL.
 */
int busbar_bus_get_stats(const struct busbar_bus *bus,
                         struct busbar_bus_stats *stats,
                         struct busbar_endpoint_stats *endpoints,
                         size_t capacity);

/**
 * Every binding on the bus, oldest first: `*bindings` gets an array of
 * `*count` entries, which the caller frees with busbar_bindings_free().
 * Errors: -ENOENT, -EINVAL.
 */
int busbar_bus_names(const struct busbar_bus *bus, struct busbar_binding **bindings, size_t *count);

/**
 * Frees what busbar_bus_names() returned (NULL is ignored).
 */
void busbar_bindings_free(struct busbar_binding *bindings, size_t count);

/**
 * Sets the bus's quota per (receiving user, sending user); `*previous`
 * (optional) gets the old one. Privileged through a daemon. Errors:
 * -EPERM, -ENOENT, -EINVAL.
 */
int busbar_bus_set_quota(const struct busbar_bus *bus,
                         const struct busbar_quota *quota,
                         struct busbar_quota *previous);

/**
 * Opens an endpoint on `bus`; close it with busbar_endpoint_close().
 * Through a daemon this is a new connection (blocks for its handshake).
 * Errors: -ENOENT (no such bus), -EMFILE (a daemon limit on endpoints),
 * -ECONNREFUSED and the other errors of busbar_bus_connect, -EINVAL.
 */
int busbar_endpoint_open(const struct busbar_bus *bus, struct busbar_endpoint **out);

/**
 * Closes an endpoint and frees the handle (NULL is ignored): unread
 * requests are answered `$.KBUS.Replier.GoneAway`, taken but unanswered
 * ones `$.KBUS.Replier.Ignored`, its bindings are removed. Blocks until the
 * bus has done so. Returns 0, or -ECONNRESET if the daemon was gone
 * (the handle is freed either way).
 */
int busbar_endpoint_close(struct busbar_endpoint *ep);

/**
 * The endpoint's id, unique on its bus (0 for NULL).
 */
uint32_t busbar_endpoint_id(const struct busbar_endpoint *ep);

/**
 * Binds `pattern` (a name, or one ending in `.*` or `.%`) as a listener or
 * (`replier` true) as the replier. Errors: -EBADMSG (not a valid pattern,
 * or `$.KBUS.ReplierBindEvent` as replier), -ENAMETOOLONG, -EADDRINUSE
 * (the pattern has a replier), -EAGAIN (bind events are on and a listener
 * of them is full), -EMFILE (a daemon limit on bindings), -EINVAL.
 */
int busbar_bind(const struct busbar_endpoint *ep, const char *pattern, bool replier);

/**
 * Removes the most recent binding of `pattern` of that kind, and the
 * queued messages it caused. Errors: -EINVAL (no such binding), -EBADMSG,
 * -ENAMETOOLONG, -EAGAIN.
 */
int busbar_unbind(const struct busbar_endpoint *ep, const char *pattern, bool replier);

/**
 * Sends a message; `*id` (optional) gets its id. Does not block: with
 * `BUSBAR_ALL_OR_WAIT` and a full queue it returns -EAGAIN, `*id` gets the
 * id it will have, and the send stays pending (see
 * busbar_take_send_outcome, busbar_discard_send; for a request, its reply
 * comes once it is delivered).
 * Errors: -EBADMSG (bad or wildcard name), -ENAMETOOLONG, -EMSGSIZE,
 * -EINVAL (both ALL_OR flags; a request that is also a reply),
 * -EADDRNOTAVAIL (a request with no replier; a reply whose requester has
 * gone), -EPIPE (a stateful request whose replier changed), -ECONNREFUSED
 * (a reply this endpoint may not send), -ENOLCK (no room in our own queue
 * for a request's reply), -EBUSY (a recipient's queue is full), -EAGAIN,
 * -EALREADY (a send is already pending), -EDQUOT (a quota),
 * -ETOOMANYREFS (too many fds or handles), -EBADF (an fd not open),
 * -EPERM (a forwarded id without privilege), -ENOENT (a `to_handles`
 * handle we do not hold), -EINVAL (also: duplicate `to_handles`, a request
 * or reply sent to handles, a NULL array with a non-zero count, a NULL
 * name), -EOPNOTSUPP (through a daemon: a Unix-domain socket among the
 * fds, which the daemon refuses to pass).
 */
int busbar_send(const struct busbar_endpoint *ep,
                const struct busbar_outgoing *message,
                struct busbar_msg_id *id);

/**
 * Sends a message like busbar_send with `BUSBAR_ALL_OR_WAIT` added to its
 * flags (every recipient gets it or none does), and while a recipient's
 * queue is full waits up to `timeout_ms` for room. Blocks. Errors: those
 * of busbar_send, -EINVAL with `BUSBAR_ALL_OR_FAIL`, and -ETIMEDOUT
 * (still pending at the timeout: it is discarded).
 */
int busbar_send_wait(const struct busbar_endpoint *ep,
                     const struct busbar_outgoing *message,
                     int timeout_ms,
                     struct busbar_msg_id *id);

/**
 * Sends `n` messages in order, as if by one busbar_send each, in one bus
 * operation: `results[i]` gets 0 or the negative errno of message i, and
 * `ids[i]` its id (both arrays optional). Once one goes pending (-EAGAIN)
 * the rest fail with -EALREADY. Returns how many were sent. Errors
 * (nothing sent): a message the API cannot read: -EINVAL (a NULL name or
 * array), -EBADMSG (a name not UTF-8), -ETOOMANYREFS, -EBADF (its fds).
 */
int busbar_send_batch(const struct busbar_endpoint *ep,
                      const struct busbar_outgoing *messages,
                      size_t n,
                      int *results,
                      struct busbar_msg_id *ids);

/**
 * Sends an announcement (to every listener of `name`). As busbar_send.
 */
int busbar_announce(const struct busbar_endpoint *ep,
                    const char *name,
                    const uint8_t *data,
                    size_t len,
                    struct busbar_msg_id *id);

/**
 * Sends a request (to the replier of `name`, and its listeners); wait for
 * the reply with busbar_wait_reply or busbar_recv. As busbar_send.
 */
int busbar_request(const struct busbar_endpoint *ep,
                   const char *name,
                   const uint8_t *data,
                   size_t len,
                   struct busbar_msg_id *id);

/**
 * Replies to `request` (a message this endpoint received as its replier).
 * As busbar_send; -ECONNREFUSED if this endpoint may not answer it (not
 * its replier, or answered already).
 */
int busbar_reply(const struct busbar_endpoint *ep,
                 const struct busbar_message *request,
                 const uint8_t *data,
                 size_t len,
                 struct busbar_msg_id *id);

/**
 * Replies to `request`, then waits up to `timeout_ms` for the next
 * message, which `*next` gets: a replier's loop in one round trip through
 * a daemon. `*reply_result` gets 0 if the reply was sent, or its negative
 * errno (as busbar_reply: -EADDRNOTAVAIL if the requester has gone, ...;
 * `reply_result` is optional); the wait happens even if the reply failed. Blocks unless `timeout_ms`
 * is 0. Returns 0 with a message, -ETIMEDOUT (or -EAGAIN for timeout 0)
 * with none, or another negative errno for a failure of the endpoint.
 */
int busbar_reply_then_recv(const struct busbar_endpoint *ep,
                           const struct busbar_message *request,
                           const uint8_t *data,
                           size_t len,
                           int timeout_ms,
                           int *reply_result,
                           struct busbar_message **next);

/**
 * Sends a stateful request: to the same replier endpoint as `earlier` (a
 * reply from it, or an earlier stateful request). As busbar_send; -EPIPE
 * if another endpoint now holds the name, -EADDRNOTAVAIL if none does,
 * -EINVAL if `earlier` is neither a reply nor a stateful request.
 */
int busbar_stateful_request(const struct busbar_endpoint *ep,
                            const struct busbar_message *earlier,
                            const char *name,
                            const uint8_t *data,
                            size_t len,
                            struct busbar_msg_id *id);

/**
 * Sends a request and waits up to `timeout_ms` for its reply, which
 * `*reply` gets (free it with busbar_message_free). The reply may be
 * synthetic (busbar_message_is_synthetic: the replier went away, ignored
 * it or unbound). Blocks. Errors: those of busbar_send, -ETIMEDOUT (the
 * reply will still come, into the ordinary queue: to wait for it by id,
 * send with busbar_request and use busbar_wait_reply instead).
 */
int busbar_call(const struct busbar_endpoint *ep,
                const char *name,
                const uint8_t *data,
                size_t len,
                int timeout_ms,
                struct busbar_message **reply);

/**
 * Takes the next message (free it with busbar_message_free), waiting up
 * to `timeout_ms` (0: don't wait). Blocks unless `timeout_ms` is 0.
 * Errors: -EAGAIN (nothing queued, timeout 0), -ETIMEDOUT, -ECONNRESET
 * (the daemon went away), -EINVAL.
 */
int busbar_recv(const struct busbar_endpoint *ep, int timeout_ms, struct busbar_message **message);

/**
 * Takes up to `max` queued messages at once (one bus operation), waiting
 * up to `timeout_ms` for the first: `messages` (an array of at least `max`
 * pointers) gets them in queue order, `*count` how many; free each with
 * busbar_message_free. Stops early after 64 MiB of data. Blocks unless
 * `timeout_ms` is 0. Errors: -EAGAIN (nothing queued, timeout 0),
 * -ETIMEDOUT, -EINVAL (`max` 0, a NULL array or count).
 */
int busbar_recv_batch(const struct busbar_endpoint *ep,
                      uint32_t max,
                      int timeout_ms,
                      struct busbar_message **messages,
                      size_t *count);

/**
 * Waits up to `timeout_ms` for the reply to our request `request`, leaving
 * other messages queued. Errors: -EAGAIN (not there yet, timeout 0),
 * -ETIMEDOUT, -EINVAL (no such request of ours outstanding).
 */
int busbar_wait_reply(const struct busbar_endpoint *ep,
                      struct busbar_msg_id request,
                      int timeout_ms,
                      struct busbar_message **reply);

/**
 * Drops the pending (`BUSBAR_ALL_OR_WAIT`) send: returns 1 if there was
 * one, 0 if not.
 */
int busbar_discard_send(const struct busbar_endpoint *ep);

/**
 * How a pending send ended: `*id` (optional) its id, `*result` 0
 * (delivered) or the negative errno. Errors: -EAGAIN (still pending, or
 * none finished).
 */
int busbar_take_send_outcome(const struct busbar_endpoint *ep,
                             struct busbar_msg_id *id,
                             int *result);

/**
 * An fd that poll/epoll report readable (level-triggered) while the
 * endpoint has something to take (a message, or a send outcome). It
 * belongs to the endpoint: do not close it. Errors: -EIO (out of fds).
 */
int busbar_readiness_fd(const struct busbar_endpoint *ep);

/**
 * Sets the queue limit (at least 1: queued messages plus reserved reply
 * slots); `*previous` (optional) gets the old one. Errors: -EINVAL (0).
 */
int busbar_set_queue_limit(const struct busbar_endpoint *ep, uint32_t limit, uint32_t *previous);

/**
 * Turns "only once" on or off (one copy per message however many of our
 * bindings match); `*previous` (optional) gets the old value.
 */
int busbar_set_only_once(const struct busbar_endpoint *ep, bool on, bool *previous);

/**
 * Turns the bus's replier bind events on or off (turning them on queues
 * for us one `$.KBUS.ReplierBindEvent` per existing replier);
 * `*previous` (optional) gets the old value. Privileged through a daemon. Errors:
 * -EBUSY (the events do not fit in our queue), -EPERM.
 */
int busbar_set_replier_bind_events(const struct busbar_endpoint *ep, bool on, bool *previous);

/**
 * Turns KBUS compatibility on or off for this endpoint (its failed sends
 * still take a serial, its messages are measured in KBUS's entire form,
 * its requests reach the most recently bound of equal wildcard repliers,
 * and anyone may answer its requests while it awaits them; see the
 * project's docs/kbus.md); `*previous` (optional) gets the old value.
 */
int busbar_set_kbus_compat(const struct busbar_endpoint *ep, bool on, bool *previous);

/**
 * Turns monitoring on or off (a copy of every message the bus queues for
 * anyone); `*previous` (optional) gets the old value. Privileged through a daemon.
 * Errors: -EPERM.
 */
int busbar_set_monitor(const struct busbar_endpoint *ep, bool on, bool *previous);

/**
 * The endpoint's statistics.
 */
int busbar_endpoint_get_stats(const struct busbar_endpoint *ep,
                              struct busbar_endpoint_stats *stats);

/**
 * Creates a node owned by this endpoint; `*handle` gets our handle to it.
 * Others get handles only from messages carrying it. Errors: -EDQUOT.
 */
int busbar_create_node(const struct busbar_endpoint *ep, uint64_t *handle);

/**
 * Drops one reference to one of our handles. Errors: -ENOENT (not ours),
 * -EBUSY (the owner's last reference to a live node).
 */
int busbar_release_handle(const struct busbar_endpoint *ep, uint64_t handle);

/**
 * Destroys nodes we own, atomically; every holder is told
 * (`$.KBUS.Node.Destroyed`). Errors: -EPERM (one is not ours), -EINVAL
 * (a duplicate, or already destroyed), -ENOENT.
 */
int busbar_destroy_nodes(const struct busbar_endpoint *ep, const uint64_t *handles, size_t n);

/**
 * What an error means, as a sentence (static storage; never NULL).
 * `err` may be negative (as functions return it) or positive.
 */
const char *busbar_strerror(int err);

/**
 * The errno's symbolic name, such as "EADDRNOTAVAIL" (static storage;
 * "EUNKNOWN" for a number busbar does not use).
 */
const char *busbar_errno_name(int err);

/**
 * Frees a message, closing the fds it carried (NULL is ignored).
 */
void busbar_message_free(struct busbar_message *message);

/**
 * Its id ({0,0} for NULL).
 */
struct busbar_msg_id busbar_message_id(const struct busbar_message *message);

/**
 * For a reply: the id of the request it answers.
 */
struct busbar_msg_id busbar_message_in_reply_to(const struct busbar_message *message);

/**
 * The endpoint it was sent to (a stateful request's replier, a reply's
 * requester), or 0.
 */
uint32_t busbar_message_to(const struct busbar_message *message);

/**
 * The endpoint that sent it (0: the bus itself).
 */
uint32_t busbar_message_from(const struct busbar_message *message);

/**
 * Original sender across bridges.
 */
struct busbar_orig_from busbar_message_orig_from(const struct busbar_message *message);

/**
 * Final target across bridges.
 */
struct busbar_orig_from busbar_message_final_to(const struct busbar_message *message);

/**
 * Its flags (`BUSBAR_WANT_A_REPLY`, ...).
 */
uint32_t busbar_message_flags(const struct busbar_message *message);

/**
 * Its name, NUL-terminated; valid until the message is freed ("" for
 * NULL).
 */
const char *busbar_message_name(const struct busbar_message *message);

/**
 * Its data, not copied: `*len` gets its length. Valid until the message
 * is freed (NULL if it has no data).
 */
const uint8_t *busbar_message_data(const struct busbar_message *message, size_t *len);

/**
 * The sender's pid, uid and gid, as the bus established them.
 */
struct busbar_creds busbar_message_creds(const struct busbar_message *message);

/**
 * How many messages this endpoint lost (its queue was full) just before
 * this one.
 */
uint32_t busbar_message_lost(const struct busbar_message *message);

/**
 * Made by the bus itself (`$.KBUS.Replier.GoneAway`, ...)?
 */
bool busbar_message_is_synthetic(const struct busbar_message *message);

/**
 * A request (`BUSBAR_WANT_A_REPLY`)?
 */
bool busbar_message_is_request(const struct busbar_message *message);

/**
 * A reply (it has an `in_reply_to`)?
 */
bool busbar_message_is_reply(const struct busbar_message *message);

/**
 * A request this endpoint must answer (it is its replier)?
 */
bool busbar_message_wants_us_to_reply(const struct busbar_message *message);

/**
 * The handles it carried (our ids for them), not copied: `*count` gets
 * how many. Valid until the message is freed.
 */
const uint64_t *busbar_message_handles(const struct busbar_message *message, size_t *count);

/**
 * For a message sent to one of our nodes: our handle to that node (0
 * otherwise).
 */
uint64_t busbar_message_destination(const struct busbar_message *message);

/**
 * How many file descriptors it carried.
 */
size_t busbar_message_fd_count(const struct busbar_message *message);

/**
 * Its `index`th file descriptor (-1 if there is none). The message owns
 * it and closes it when freed: `dup` it to keep it.
 */
int busbar_message_fd(const struct busbar_message *message, size_t index);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* BUSBAR_H */
