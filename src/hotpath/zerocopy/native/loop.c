// The native flow loop: one edge-triggered epoll loop in C that owns adopted TCP socket pairs and
// forwards between them with no JavaScript per message. Compiled at run time by bun:ffi `cc`
// (TinyCC) and entered by the engine's worker thread (native-worker.ts), which stays in nf_run()
// until the loop has something only JS can do: adopt queued pairs (eventfd woke it), report
// finished pairs, or stop.
//
// Per direction (side d -> side 1-d):
// - small flows: recv() into one scratch buffer shared by the whole loop, send() it on. A short
//   read drains the socket (a later arrival raises a new edge), unless the event also carried a
//   hang-up: then read on to EOF/EAGAIN so the FIN is not lost.
// - when a send() is short (destination full), the rest goes into a pipe created for that
//   direction on first need and the direction switches to splice(2) for good; so does a
//   direction that keeps filling the scratch buffer (bulk). The pipe keeps the bytes in the
//   kernel, so no per-pair user-space buffer and no malloc per message exist.
// - FIN: shutdown(SHUT_WR) on the destination once everything before it was delivered. A socket
//   error resets both sides (SO_LINGER 0 + close). See NOTES.md for the fd hand-over.
//
// Memory: nf_create() allocates everything once (pair table, scratch, event array).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SPLICE_F_MOVE
#define SPLICE_F_MOVE 1
#define SPLICE_F_NONBLOCK 2
#endif
#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif
#ifndef EPOLLRDHUP
#define EPOLLRDHUP 0x2000
#endif


/*
 * struct epoll_event is packed on x86-64 (12 bytes, data at offset 4) and naturally aligned
 * elsewhere (16, data at 8). TinyCC ignores __attribute__((packed)) (sizeof is 16 under it on
 * x86-64), so the loop never uses the struct's layout: events are raw bytes at these offsets.
 */
#if defined(__x86_64__)
#define EV_SIZE 12
#define EV_DATA 4
#else
#define EV_SIZE 16
#define EV_DATA 8
#endif

#define SCRATCH (64 * 1024)
#define EVENTS 256
/* Rounds per direction per wake-up before yielding to other pairs (fairness). */
#define ROUNDS 8
/* Full scratch reads after which a direction is bulk and moves to splice(2). */
#define BULK_READS 16

#define DONE_CLEAN 0
#define DONE_RESET 1
#define DONE_STOPPED 2

#define R_IDLE 0
#define R_MORE 1
#define R_FAIL 2

/* nf_run() result: (done records << 1) | woke, or RUN_FATAL. */
#define RUN_FATAL -1

struct dir {
  int pipe_r, pipe_w, pipe_cap, in_pipe;
  int full_reads;
  uint8_t eof, shut, spliced;
};

struct pair {
  int fd[2];
  struct dir d[2];
  int err;
  uint8_t live, again;
};

struct nf {
  int ep, event_fd, max_pairs, pipe_bytes, max_piped, piped;
  struct pair *pairs;
  double *bytes;      /* shared with JS: bytes[slot*2+d] delivered so far */
  int32_t *done;      /* shared with JS: [slot, reason, errno] per finished pair */
  int ndone;
  int *again;         /* slots to pump again without waiting (each at most once: pair.again) */
  int *again2;        /* the list being served while service() fills the other */
  int nagain;
  unsigned char *events; /* EVENTS raw epoll_event records of EV_SIZE bytes */
  char *scratch;
  int stats_pipes_refused;
};

static int ctl(int ep, int op, int fd, uint32_t events, uint64_t data) {
  unsigned char ev[16];
  memset(ev, 0, sizeof ev);
  memcpy(ev, &events, 4);
  memcpy(ev + EV_DATA, &data, 8);
  return epoll_ctl(ep, op, fd, (struct epoll_event *)ev);
}

static int fail(struct pair *p, int e) {
  if (p->err == 0) p->err = e;
  return R_FAIL;
}

/* A pipe for direction d of p, made on first need; 0 when none can be had (cap or fds). */
static int ensure_pipe(struct nf *s, struct dir *dr) {
  int fds[2];
  if (dr->pipe_r >= 0) return 1;
  if (s->piped >= s->max_piped) {
    s->stats_pipes_refused++;
    return 0;
  }
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    s->stats_pipes_refused++;
    return 0;
  }
  fcntl(fds[0], F_SETPIPE_SZ, s->pipe_bytes); /* failure leaves 64 KiB: slower, still correct */
  dr->pipe_r = fds[0];
  dr->pipe_w = fds[1];
  dr->pipe_cap = fcntl(fds[0], F_GETPIPE_SZ, 0);
  if (dr->pipe_cap <= 0) dr->pipe_cap = 65536;
  s->piped++;
  return 1;
}

/* splice(2) pump for a direction that has a pipe; same stop rules as pump.ts. */
static int pump_splice(struct nf *s, struct pair *p, int slot, int d) {
  struct dir *dr = &p->d[d];
  int src = p->fd[d], dst = p->fd[1 - d];
  for (int i = 0; i < ROUNDS; i++) {
    int moved = 0, src_blocked = 0;
    if (!dr->eof && dr->in_pipe < dr->pipe_cap) {
      int was_empty = dr->in_pipe == 0;
      ssize_t n = splice(src, 0, dr->pipe_w, 0, dr->pipe_cap - dr->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        dr->in_pipe += n;
        moved = 1;
      } else if (n == 0) {
        dr->eof = 1;
        moved = 1;
      } else if (errno == EAGAIN) {
        src_blocked = was_empty; /* with bytes in the pipe EAGAIN may mean "pipe slots full" */
      } else if (errno != EINTR) {
        return fail(p, errno);
      }
    }
    if (dr->in_pipe > 0) {
      ssize_t n = splice(dr->pipe_r, 0, dst, 0, dr->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        dr->in_pipe -= n;
        s->bytes[slot * 2 + d] += n;
        moved = 1;
      } else if (n < 0) {
        if (errno == EAGAIN) return R_IDLE; /* dst's EPOLLOUT edge wakes us */
        if (errno != EINTR) return fail(p, errno);
      }
    }
    if (dr->eof && dr->in_pipe == 0) {
      if (!dr->shut) {
        dr->shut = 1;
        shutdown(dst, SHUT_WR);
      }
      return R_IDLE;
    }
    if (!moved || (src_blocked && dr->in_pipe == 0)) return R_IDLE;
  }
  return R_MORE;
}

/* recv/send pump. hup: the event carried a hang-up, so a short read does not prove the socket empty. */
static int pump(struct nf *s, struct pair *p, int slot, int d, int hup) {
  struct dir *dr = &p->d[d];
  if (dr->spliced) return pump_splice(s, p, slot, d);
  int src = p->fd[d], dst = p->fd[1 - d];
  for (int i = 0; i < ROUNDS; i++) {
    if (dr->eof) break;
    ssize_t n = recv(src, s->scratch, SCRATCH, 0);
    if (n > 0) {
      ssize_t w = send(dst, s->scratch, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) return fail(p, errno);
        w = 0;
      }
      s->bytes[slot * 2 + d] += w;
      if (w < n) {
        /* Destination full: park the rest in the kernel and continue with splice(2). */
        if (!ensure_pipe(s, dr)) return fail(p, ENOBUFS);
        ssize_t k = write(dr->pipe_w, s->scratch + w, n - w);
        if (k != n - w) return fail(p, k < 0 ? errno : ENOBUFS);
        dr->in_pipe = (int)k;
        dr->spliced = 1;
        return pump_splice(s, p, slot, d);
      }
      if (n < SCRATCH) {
        if (!hup) return R_IDLE;
        continue;
      }
      if (++dr->full_reads >= BULK_READS && ensure_pipe(s, dr)) {
        dr->spliced = 1;
        return pump_splice(s, p, slot, d);
      }
      continue;
    }
    if (n == 0) {
      dr->eof = 1;
      break;
    }
    if (errno == EAGAIN) return R_IDLE;
    if (errno != EINTR) return fail(p, errno);
  }
  if (dr->eof) {
    if (!dr->shut) {
      dr->shut = 1;
      shutdown(dst, SHUT_WR);
    }
    return R_IDLE;
  }
  return R_MORE;
}

static void release(struct nf *s, int slot, int reason) {
  struct pair *p = &s->pairs[slot];
  struct linger lg = {1, 0};
  p->live = 0; /* p->again stays: it mirrors "in the again list" until popped from it */
  for (int side = 0; side < 2; side++) {
    /* Deregister explicitly: a caller that kept a reference would leave a stale registration. */
    ctl(s->ep, EPOLL_CTL_DEL, p->fd[side], 0, 0);
    if (reason != DONE_CLEAN) setsockopt(p->fd[side], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(p->fd[side]);
    p->fd[side] = -1;
    struct dir *dr = &p->d[side];
    if (dr->pipe_r >= 0) {
      close(dr->pipe_r);
      close(dr->pipe_w);
      dr->pipe_r = dr->pipe_w = -1;
      s->piped--;
    }
  }
  int32_t *rec = s->done + s->ndone * 3;
  rec[0] = slot;
  rec[1] = reason;
  rec[2] = p->err;
  s->ndone++;
}

static void finish(struct nf *s, int slot, int a, int b) {
  struct pair *p = &s->pairs[slot];
  if (a == R_FAIL || b == R_FAIL) return release(s, slot, DONE_RESET);
  if (p->d[0].shut && p->d[1].shut) return release(s, slot, DONE_CLEAN);
  if ((a == R_MORE || b == R_MORE) && !p->again) {
    p->again = 1;
    s->again[s->nagain++] = slot;
  }
}

/* Both directions (at adoption, and for pairs that ran out of rounds). */
static void service(struct nf *s, int slot, int hup) {
  struct pair *p = &s->pairs[slot];
  if (!p->live) return;
  int a = pump(s, p, slot, 0, hup);
  int b = a == R_FAIL ? R_FAIL : pump(s, p, slot, 1, hup);
  finish(s, slot, a, b);
}

/*
 * An event on one socket: readable (or hung up, or failed) -> the direction it is the source
 * of; writable -> the direction it is the destination of, only if that one has bytes parked in
 * its pipe (epoll reports EPOLLOUT on nearly every edge: pumping on it would cost a recv that
 * says EAGAIN per message).
 */
static void on_event(struct nf *s, int slot, int side, uint32_t ev) {
  struct pair *p = &s->pairs[slot];
  if (!p->live) return;
  int a = R_IDLE, b = R_IDLE;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) a = pump(s, p, slot, side, (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
  if (a != R_FAIL && (ev & EPOLLOUT) && p->d[1 - side].in_pipe > 0) b = pump(s, p, slot, 1 - side, 0);
  finish(s, slot, a, b);
}

struct nf *nf_create(int max_pairs, int max_piped, int pipe_bytes, int event_fd, double *bytes, int32_t *done) {
  struct nf *s = calloc(1, sizeof *s);
  if (!s) return 0;
  s->max_pairs = max_pairs;
  s->max_piped = max_piped;
  s->pipe_bytes = pipe_bytes;
  s->event_fd = event_fd;
  s->bytes = bytes;
  s->done = done;
  s->pairs = calloc(max_pairs, sizeof *s->pairs);
  s->again = calloc(max_pairs, sizeof *s->again);
  s->again2 = calloc(max_pairs, sizeof *s->again2);
  s->events = calloc(EVENTS, EV_SIZE);
  s->scratch = malloc(SCRATCH);
  s->ep = epoll_create1(EPOLL_CLOEXEC);
  if (!s->pairs || !s->again || !s->again2 || !s->events || !s->scratch || s->ep < 0 || ctl(s->ep, EPOLL_CTL_ADD, event_fd, EPOLLIN, 0) != 0) {
    if (s->ep >= 0) close(s->ep);
    free(s->pairs);
    free(s->again);
    free(s->again2);
    free(s->events);
    free(s->scratch);
    free(s);
    return 0;
  }
  for (int i = 0; i < max_pairs; i++) {
    s->pairs[i].fd[0] = s->pairs[i].fd[1] = -1;
    for (int d = 0; d < 2; d++) s->pairs[i].d[d].pipe_r = s->pairs[i].d[d].pipe_w = -1;
  }
  return s;
}

/* Take over a connected pair (fds already the engine's own dups) and pump what already waits. */
int nf_add(struct nf *s, int slot, int fd_a, int fd_b) {
  struct pair *p = &s->pairs[slot];
  uint8_t again = p->again;
  memset(p, 0, sizeof *p);
  p->again = again;
  p->fd[0] = fd_a;
  p->fd[1] = fd_b;
  for (int d = 0; d < 2; d++) p->d[d].pipe_r = p->d[d].pipe_w = -1;
  s->bytes[slot * 2] = s->bytes[slot * 2 + 1] = 0;
  p->live = 1;
  for (int side = 0; side < 2; side++) {
    if (ctl(s->ep, EPOLL_CTL_ADD, p->fd[side], EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, (uint64_t)(slot * 2 + side + 1)) != 0) {
      p->err = errno;
      release(s, slot, DONE_RESET);
      return s->ndone;
    }
  }
  /* Bytes (or a FIN) may already wait: the edge happened before we registered. */
  service(s, slot, 1);
  return s->ndone;
}

/*
 * The loop. Returns when JS has work: done records in the shared done array (JS reports them,
 * then calls nf_run again) and/or the eventfd fired (adopt queued pairs, or stop):
 * (records << 1) | woke. RUN_FATAL if epoll_wait failed.
 */
int nf_run(struct nf *s) {
  s->ndone = 0;
  for (;;) {
    int n = epoll_wait(s->ep, (struct epoll_event *)s->events, EVENTS, s->nagain > 0 ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return RUN_FATAL;
    }
    int wake = 0;
    for (int i = 0; i < n; i++) {
      uint64_t tok;
      uint32_t ev;
      memcpy(&ev, s->events + i * EV_SIZE, 4);
      memcpy(&tok, s->events + i * EV_SIZE + EV_DATA, 8);
      if (tok == 0) {
        uint64_t v;
        read(s->event_fd, &v, 8);
        wake = 1;
        continue;
      }
      on_event(s, (int)((tok - 1) >> 1), (int)((tok - 1) & 1), ev);
    }
    int k = s->nagain;
    int *list = s->again;
    s->again = s->again2;
    s->again2 = list;
    s->nagain = 0;
    for (int i = 0; i < k; i++) {
      int slot = list[i];
      s->pairs[slot].again = 0;
      service(s, slot, 1);
    }
    if (wake || s->ndone > 0) return (s->ndone << 1) | wake;
  }
}

/* Reset every live pair (reported DONE_STOPPED) and close the epoll fd. Returns done records. */
int nf_stop(struct nf *s) {
  s->ndone = 0;
  for (int i = 0; i < s->max_pairs; i++)
    if (s->pairs[i].live) release(s, i, DONE_STOPPED);
  close(s->ep);
  s->ep = -1;
  /* Nothing calls into s after this: the worker ends. (done/bytes are JS memory.) */
  int n = s->ndone;
  free(s->pairs);
  free(s->again);
  free(s->again2);
  free(s->events);
  free(s->scratch);
  free(s);
  return n;
}

/* Clear the done records before the worker adopts from the ring (nf_add appends to them). */
void nf_clear_done(struct nf *s) {
  s->ndone = 0;
}

int nf_pipes(struct nf *s) {
  return s->piped;
}

int nf_pipes_refused(struct nf *s) {
  return s->stats_pipes_refused;
}
