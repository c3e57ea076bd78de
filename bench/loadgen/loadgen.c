/*
 * loadgen: a small HTTP/1.1 load generator for Allotment's benchmarks (127.0.0.1 only).
 *
 * Why it exists: on a 2-core machine shared with the server, a Python client steals the CPU
 * it is measuring. This one is a single thread on epoll with keep-alive connections.
 *
 * Two modes:
 *   closed loop (no --rate): every connection sends its next request as soon as the previous
 *     answer is in; latency runs from send to the end of the answer (saturation throughput).
 *   open loop (--rate R): request k is *scheduled* at t0 + k/R, whatever the answers do, and
 *     goes out on the first idle connection; its latency runs from its scheduled time, so time
 *     spent queued behind a slow server counts (no coordinated omission). Requests still
 *     unanswered when the drain time runs out are counted as incomplete, with the time they had
 *     waited so far as their latency: percentiles are then lower bounds, and say so.
 *
 * Requests come from a file of records, rotated over (request k uses record k mod n):
 *   METHOD SP PATH SP CONTENT-TYPE-or-"-" SP BODY-LENGTH LF, then BODY-LENGTH bytes, then LF.
 * --once sends every record exactly once, in order, then stops (bulk ingest); --sequential
 * too, but one at a time, each on the next connection in turn (a write, then the read after it).
 * --dump FILE writes every answer: "index status latency_us body_length LF body LF".
 *
 * The summary is one JSON object on stdout. Exit status 0 unless the arguments were wrong or
 * the server could not be reached at all.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

typedef struct {
    char *head;     /* request line + headers, ready to send */
    size_t head_len;
    char *body;
    size_t body_len;
} request_t;

enum conn_state { C_IDLE, C_SENDING, C_READING, C_CLOSED };

typedef struct {
    int fd;
    enum conn_state state;
    int64_t index;        /* request number k in flight */
    size_t record;        /* which record */
    uint64_t start_ns;    /* scheduled (open loop) or send (closed loop) time */
    size_t sent;          /* bytes of head+body sent */
    char *in;             /* read buffer */
    size_t in_len, in_cap;
    size_t header_end;    /* offset past CRLFCRLF, 0 = not yet */
    long content_length;  /* -1 unknown */
    int chunked;
    int status;
    int keep_alive;
    int want_out;         /* EPOLLOUT registered: only while a request is partly sent */
} conn_t;

static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_connections = 1;
static double opt_duration = 5.0;
static double opt_rate = 0.0;
static double opt_drain = 5.0;
static int opt_once = 0;
static int opt_sequential = 0; /* --once, one request at a time, connections taken in turn */
static const char *opt_requests = NULL;
static const char *opt_dump = NULL;
static char *opt_headers = NULL; /* extra header lines, CRLF-terminated */
static size_t opt_headers_len = 0;

static request_t *records = NULL;
static size_t n_records = 0;
static conn_t *conns = NULL;
static int epfd = -1;
static FILE *dump = NULL;
static struct sockaddr_in server_addr;

static latencies_t lat;
static long status_counts[600];
static long connect_errors = 0, io_errors = 0, reconnects = 0, parse_errors = 0;
static int64_t next_index = 0;   /* next request number to send */
static int64_t completed = 0;
static int64_t total_limit = -1; /* open loop: requests scheduled in the run; --once: records */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *message) {
    fprintf(stderr, "loadgen: %s\n", message);
    exit(2);
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) die("out of memory");
    return q;
}

/* -- requests file ------------------------------------------------------------------------ */

static void load_requests(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open the requests file");
    size_t cap = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '\n') continue;
        char method[16], target[4096], ctype[256];
        long body_len;
        if (sscanf(line, "%15s %4095s %255s %ld", method, target, ctype, &body_len) != 4 ||
            body_len < 0)
            die("bad record header in the requests file");
        char *body = NULL;
        if (body_len > 0) {
            body = xrealloc(NULL, (size_t)body_len);
            if (fread(body, 1, (size_t)body_len, f) != (size_t)body_len) die("short body");
        }
        int c = fgetc(f);
        if (c != '\n' && c != EOF) die("a record's body must be followed by a newline");
        if (n_records == cap) {
            cap = cap ? cap * 2 : 64;
            records = xrealloc(records, cap * sizeof *records);
        }
        char head[8192 + 4096];
        int n;
        if (strcmp(ctype, "-") == 0)
            n = snprintf(head, sizeof head,
                         "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%.*sContent-Length: %ld\r\n\r\n",
                         method, target, opt_host, opt_port, (int)opt_headers_len,
                         opt_headers ? opt_headers : "", body_len);
        else
            n = snprintf(head, sizeof head,
                         "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%.*sContent-Type: %s\r\n"
                         "Content-Length: %ld\r\n\r\n",
                         method, target, opt_host, opt_port, (int)opt_headers_len,
                         opt_headers ? opt_headers : "", ctype, body_len);
        if (n <= 0 || (size_t)n >= sizeof head) die("request head too long");
        records[n_records].head = strndup(head, (size_t)n);
        records[n_records].head_len = (size_t)n;
        records[n_records].body = body;
        records[n_records].body_len = (size_t)body_len;
        n_records++;
    }
    fclose(f);
    if (n_records == 0) die("the requests file holds no record");
}

/* -- connections -------------------------------------------------------------------------- */

static void conn_open(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(c->fd, (struct sockaddr *)&server_addr, sizeof server_addr);
    if (r < 0 && errno != EINPROGRESS) {
        connect_errors++;
        close(c->fd);
        c->fd = -1;
        c->state = C_CLOSED;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->want_out = 0;
    c->state = C_IDLE;
    c->in_len = 0;
    c->header_end = 0;
}

static void conn_close(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_CLOSED;
}

static int64_t pending_due(uint64_t t0, uint64_t now) {
    /* Open loop: how many requests are due by `now` but not yet sent. */
    double elapsed = (double)(now - t0) / 1e9;
    int64_t due = (int64_t)(elapsed * opt_rate) + 1;
    if (total_limit >= 0 && due > total_limit) due = total_limit;
    return due - next_index;
}

static uint64_t scheduled_ns(uint64_t t0, int64_t k) {
    return t0 + (uint64_t)((double)k * 1e9 / opt_rate);
}

static void watch_writable(conn_t *c, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void try_send(conn_t *c) {
    request_t *r = &records[c->record];
    struct iovec iov[2];
    size_t total = r->head_len + r->body_len;
    while (c->sent < total) {
        int n_iov = 0;
        if (c->sent < r->head_len) {
            iov[n_iov].iov_base = r->head + c->sent;
            iov[n_iov].iov_len = r->head_len - c->sent;
            n_iov++;
            if (r->body_len) {
                iov[n_iov].iov_base = r->body;
                iov[n_iov].iov_len = r->body_len;
                n_iov++;
            }
        } else {
            iov[0].iov_base = r->body + (c->sent - r->head_len);
            iov[0].iov_len = total - c->sent;
            n_iov = 1;
        }
        ssize_t n = writev(c->fd, iov, n_iov);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) {
                watch_writable(c, 1);
                return;
            }
            io_errors++;
            conn_close(c);
            return;
        }
        c->sent += (size_t)n;
    }
    watch_writable(c, 0);
    c->state = C_READING;
}

static void start_request(conn_t *c, int64_t k, uint64_t start) {
    c->index = k;
    c->record = (size_t)(k % (int64_t)n_records);
    c->start_ns = start;
    c->sent = 0;
    c->in_len = 0;
    c->header_end = 0;
    c->content_length = -1;
    c->chunked = 0;
    c->status = 0;
    c->keep_alive = 1;
    c->state = C_SENDING;
    next_index++;
    try_send(c);
}

/* The body length once the answer is complete, -1 if not yet, -2 if it cannot be read.
 * A chunked body is decoded in place once its last chunk is in. */
static long response_complete(conn_t *c) {
    if (!c->header_end) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) return -1;
        c->header_end = (size_t)(end - c->in) + 4;
        if (c->header_end < 12 || strncmp(c->in, "HTTP/1.", 7) != 0) return -2;
        c->status = atoi(c->in + 9);
        char *line = memchr(c->in, '\n', c->header_end);
        while (line && (size_t)(line + 1 - c->in) < c->header_end - 2) {
            line++;
            char *eol = memchr(line, '\n', c->header_end - (size_t)(line - c->in));
            size_t len = eol ? (size_t)(eol - line) : 0;
            if (len > 15 && strncasecmp(line, "content-length:", 15) == 0)
                c->content_length = strtol(line + 15, NULL, 10);
            else if (len > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0 &&
                     memmem(line, len, "chunked", 7))
                c->chunked = 1;
            else if (len > 11 && strncasecmp(line, "connection:", 11) == 0 &&
                     memmem(line, len, "close", 5))
                c->keep_alive = 0;
            line = eol;
        }
        if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200))
            c->content_length = 0;
    }
    size_t have = c->in_len - c->header_end;
    if (c->chunked) {
        const char *body = c->in + c->header_end;
        int done = (have >= 5 && memcmp(body, "0\r\n\r\n", 5) == 0) ||
                   (have >= 7 && memcmp(c->in + c->in_len - 7, "\r\n0\r\n\r\n", 7) == 0);
        if (!done) return -1;
        size_t rd = c->header_end, wr = c->header_end;
        for (;;) {
            char *eol = memmem(c->in + rd, c->in_len - rd, "\r\n", 2);
            if (!eol) return -2;
            long size = strtol(c->in + rd, NULL, 16);
            size_t at = (size_t)(eol - c->in) + 2;
            if (size <= 0) break;
            if (at + (size_t)size > c->in_len) return -2;
            memmove(c->in + wr, c->in + at, (size_t)size);
            wr += (size_t)size;
            rd = at + (size_t)size + 2;
        }
        c->content_length = (long)(wr - c->header_end);
        c->chunked = 0;
        c->in_len = wr;
        return c->content_length;
    }
    if (c->content_length < 0) return -2; /* neither a length nor chunks: not our server */
    if (have < (size_t)c->content_length) return -1;
    return c->content_length;
}

static void finish_request(conn_t *c, uint64_t end) {
    uint64_t latency_us = (end - c->start_ns) / 1000;
    latencies_add(&lat, latency_us);
    if (c->status >= 0 && c->status < 600) status_counts[c->status]++;
    completed++;
    if (dump) {
        fprintf(dump, "%zu %d %llu %ld\n", c->record, c->status, (unsigned long long)latency_us,
                c->content_length);
        fwrite(c->in + c->header_end, 1, (size_t)c->content_length, dump);
        fputc('\n', dump);
    }
    c->state = C_IDLE;
    c->in_len = 0;
    c->header_end = 0;
    if (!c->keep_alive) {
        conn_close(c);
        conn_open(c);
        reconnects++;
    }
}

static void reopen(conn_t *c, long *counter) {
    if (counter) (*counter)++;
    conn_close(c);
    conn_open(c);
    reconnects++;
}

static void on_readable(conn_t *c, uint64_t now) {
    int eof = 0, broken = 0;
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
            c->in = xrealloc(c->in, c->in_cap);
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n == 0) eof = 1;
        else if (errno != EAGAIN && errno != EWOULDBLOCK) broken = 1;
        break;
    }
    int busy = c->state == C_READING || c->state == C_SENDING;
    if (busy && c->in_len) {
        long body = response_complete(c);
        if (body >= 0) {
            if (eof || broken) c->keep_alive = 0;
            finish_request(c, now);
            return;
        }
        if (body == -2) {
            reopen(c, &parse_errors);
            return;
        }
    }
    /* Closed by the peer or broken: a request in flight on it is lost (an error). */
    if (eof || broken) reopen(c, busy ? &io_errors : NULL);
}

/* -- main loop ---------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P --requests FILE [--host 127.0.0.1] [--connections N]\n"
            "               [--duration S] [--rate R] [--once | --sequential] [--drain S]\n"
            "               [--dump FILE]\n"
            "               [--header 'Name: value']...\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--once")) {
            opt_once = 1;
            continue;
        }
        if (!strcmp(a, "--sequential")) {
            opt_once = opt_sequential = 1;
            continue;
        }
        if (!v) usage();
        if (!strcmp(a, "--host")) opt_host = v;
        else if (!strcmp(a, "--port")) opt_port = atoi(v);
        else if (!strcmp(a, "--connections")) opt_connections = atoi(v);
        else if (!strcmp(a, "--duration")) opt_duration = atof(v);
        else if (!strcmp(a, "--rate")) opt_rate = atof(v);
        else if (!strcmp(a, "--drain")) opt_drain = atof(v);
        else if (!strcmp(a, "--requests")) opt_requests = v;
        else if (!strcmp(a, "--dump")) opt_dump = v;
        else if (!strcmp(a, "--header")) {
            size_t n = strlen(v);
            opt_headers = xrealloc(opt_headers, opt_headers_len + n + 3);
            memcpy(opt_headers + opt_headers_len, v, n);
            memcpy(opt_headers + opt_headers_len + n, "\r\n", 3);
            opt_headers_len += n + 2;
        } else usage();
        i++;
    }
    if (!opt_port || !opt_requests || opt_connections < 1 || opt_rate < 0 || opt_duration <= 0)
        usage();
    if (opt_once && opt_rate > 0) die("--once and --rate exclude each other");
    /* Only loopback is ever a target. */
    if (strncmp(opt_host, "127.", 4) != 0) die("only 127.0.0.0/8 may be loaded");
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &server_addr.sin_addr) != 1) die("bad --host");

    load_requests(opt_requests);
    if (opt_dump) {
        dump = fopen(opt_dump, "wb");
        if (!dump) die("cannot open the dump file");
    }
    latencies_init(&lat);
    epfd = epoll_create1(0);
    conns = calloc((size_t)opt_connections, sizeof *conns);
    for (int i = 0; i < opt_connections; i++) {
        conns[i].fd = -1;
        conn_open(&conns[i]);
    }

    int open_loop = opt_rate > 0;
    if (opt_once) total_limit = (int64_t)n_records;
    else if (open_loop) total_limit = (int64_t)(opt_rate * opt_duration);
    uint64_t t0 = now_ns();
    /* closed: send until end_ns; open: requests are scheduled until end_ns; once: end_ns is a
     * time limit for the whole run. Past end_ns + drain nothing more is awaited. */
    uint64_t end_ns = t0 + (uint64_t)(opt_duration * 1e9);
    uint64_t give_up = opt_once ? end_ns : end_ns + (uint64_t)(opt_drain * 1e9);
    int64_t completed_in_window = 0;
    struct epoll_event events[256];

    for (;;) {
        uint64_t now = now_ns();
        int more = open_loop || opt_once ? next_index < total_limit : now < end_ns;
        int in_flight = 0;
        for (int i = 0; i < opt_connections; i++)
            if (conns[i].state == C_SENDING || conns[i].state == C_READING) in_flight++;
        if (!more && in_flight == 0) break;
        if (completed == 0 && reconnects + connect_errors > 1000) die("cannot reach the server");
        if (now >= give_up) break;

        /* --sequential: the next request waits for the answer before it, on the next connection
         * in turn (so a write and the read after it may meet different server workers). */
        if (opt_sequential && more && in_flight == 0) {
            conn_t *c = &conns[next_index % opt_connections];
            if (c->state == C_CLOSED) conn_open(c);
            if (c->state == C_IDLE) start_request(c, next_index, now);
            more = 0;
        }
        /* Hand out work to idle connections. */
        for (int i = 0; more && !opt_sequential && i < opt_connections; i++) {
            conn_t *c = &conns[i];
            if (c->state == C_CLOSED) {
                if (connect_errors > 1000) die("cannot connect to the server");
                conn_open(c);
                continue;
            }
            if (c->state != C_IDLE) continue;
            if (open_loop) {
                if (pending_due(t0, now) <= 0) break;
                start_request(c, next_index, scheduled_ns(t0, next_index));
            } else {
                start_request(c, next_index, now);
            }
            more = open_loop || opt_once ? next_index < total_limit : 1;
        }

        int timeout_ms = 20;
        if (open_loop && next_index < total_limit) {
            uint64_t next = scheduled_ns(t0, next_index);
            /* Rounded down: a send is at most about a millisecond late, and it is counted from
             * its schedule anyway. */
            timeout_ms = next > now ? (int)((next - now) / 1000000) : 0;
            if (timeout_ms > 20) timeout_ms = 20;
        }
        int n = epoll_wait(epfd, events, 256, timeout_ms);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            int64_t before = completed;
            if ((events[i].events & EPOLLOUT) && c->state == C_SENDING) try_send(c);
            if (c->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
                on_readable(c, now);
            if (completed > before && now <= end_ns) completed_in_window += completed - before;
        }
    }

    uint64_t finished = now_ns();
    /* Whatever is still owed counts as incomplete; in open loop and --once with the time it has
     * waited so far as its latency (a lower bound). */
    long incomplete = 0;
    for (int i = 0; i < opt_connections; i++) {
        conn_t *c = &conns[i];
        if (c->state == C_SENDING || c->state == C_READING) {
            if (open_loop || opt_once) latencies_add(&lat, (finished - c->start_ns) / 1000);
            incomplete++;
        }
    }
    if (open_loop || opt_once) {
        for (int64_t k = next_index; k < total_limit; k++) {
            uint64_t s = open_loop ? scheduled_ns(t0, k) : t0;
            latencies_add(&lat, finished > s ? (finished - s) / 1000 : 0);
            incomplete++;
        }
    }
    if (dump) fclose(dump);

    /* Closed loop: answers within the duration, over the duration. Otherwise: every answer,
     * over the time until the last one. */
    double elapsed = (double)(finished - t0) / 1e9;
    double throughput = elapsed > 0 ? (double)completed / elapsed : 0.0;
    if (!open_loop && !opt_once) {
        elapsed = opt_duration;
        throughput = (double)completed_in_window / opt_duration;
    }
    latencies_sort(&lat);
    printf("{\"mode\":\"%s\",\"connections\":%d,\"rate\":%.3f,\"duration_s\":%.6f,"
           "\"completed\":%lld,\"incomplete\":%ld,\"throughput_rps\":%.3f,",
           opt_once ? "once" : (open_loop ? "open" : "closed"), opt_connections, opt_rate, elapsed,
           (long long)completed, incomplete, throughput);
    printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,"
           "\"mean\":%.3f,\"count\":%zu},",
           latencies_quantile(&lat, 0.50) / 1000.0, latencies_quantile(&lat, 0.90) / 1000.0,
           latencies_quantile(&lat, 0.99) / 1000.0, latencies_quantile(&lat, 0.999) / 1000.0,
           latencies_quantile(&lat, 1.0) / 1000.0, latencies_mean(&lat) / 1000.0, lat.count);
    printf("\"status\":{");
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (status_counts[s]) {
            printf("%s\"%d\":%ld", first ? "" : ",", s, status_counts[s]);
            first = 0;
        }
    printf("},\"errors\":{\"connect\":%ld,\"io\":%ld,\"parse\":%ld,\"reconnects\":%ld}}\n",
           connect_errors, io_errors, parse_errors, reconnects);
    if (completed == 0 && (connect_errors || io_errors)) {
        fprintf(stderr, "loadgen: cannot reach the server: no answer, only errors\n");
        return 3;
    }
    return 0;
}
