/*
 * memfd: passes a memfd from one endpoint to another; the receiver maps it
 * and prints what the sender wrote. Large payloads travel this way, beside
 * a small message.
 *
 *   ./memfd [SOCKET]        (default: the default busbar socket)
 */
#define _GNU_SOURCE /* memfd_create */
#include <busbar.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, busbar_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    static const char text[] = "hello from a memfd, carried by a busbar message";
    busbar_bus *bus;
    busbar_endpoint *sender = NULL, *receiver = NULL;
    busbar_message *m = NULL;
    int status = 1, rc = busbar_bus_connect(argc > 1 ? argv[1] : NULL, &bus);
    if (rc < 0)
        return fail("connect", rc);
    if ((rc = busbar_endpoint_open(bus, &sender)) < 0 ||
        (rc = busbar_endpoint_open(bus, &receiver)) < 0 ||
        (rc = busbar_bind(receiver, "$.memfd.demo", false)) < 0) {
        fail("setup", rc);
        goto out;
    }

    /* The sender writes into a memfd and sends it; the bus gives the
     * receiver its own copy of the fd, so the sender closes its own. */
    int fd = memfd_create("busbar-demo", MFD_CLOEXEC);
    if (fd < 0 || write(fd, text, sizeof text) != (ssize_t)sizeof text) {
        perror("memfd");
        goto out;
    }
    busbar_outgoing msg = {0};
    msg.name = "$.memfd.demo";
    msg.data = (const uint8_t *)"see the fd";
    msg.data_len = 10;
    msg.fds = &fd;
    msg.fd_count = 1;
    rc = busbar_send(sender, &msg, NULL);
    close(fd);
    if (rc < 0) {
        fail("send", rc);
        goto out;
    }

    /* The receiver maps the fd it got. The message owns it. */
    if ((rc = busbar_recv(receiver, 5000, &m)) < 0) {
        fail("recv", rc);
        goto out;
    }
    int got = busbar_message_fd(m, 0);
    struct stat st;
    if (got < 0 || fstat(got, &st) < 0) {
        fprintf(stderr, "no fd in the message\n");
        goto out;
    }
    const char *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, got, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        goto out;
    }
    printf("%s carried %zu fd(s); the memfd holds %lld bytes: %s\n", busbar_message_name(m),
           busbar_message_fd_count(m), (long long)st.st_size, p);
    status = strcmp(p, text) != 0;
    munmap((void *)p, (size_t)st.st_size);

out:
    busbar_message_free(m); /* closes its fd */
    busbar_endpoint_close(receiver);
    busbar_endpoint_close(sender);
    busbar_bus_free(bus);
    return status;
}
