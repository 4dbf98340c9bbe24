#ifndef C_GATEWAY_SYSTEM_H
#define C_GATEWAY_SYSTEM_H

// Linux event primitives the event loop needs. Swift's Glibc module does not export these headers,
// and a few of their constants are macros Swift cannot import, so they are re-exposed as functions.

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <malloc.h>

static inline uint32_t cgs_epollin(void) { return EPOLLIN; }
static inline uint32_t cgs_epollout(void) { return EPOLLOUT; }
static inline uint32_t cgs_epollerr(void) { return EPOLLERR; }
static inline uint32_t cgs_epollhup(void) { return EPOLLHUP; }
static inline uint32_t cgs_epollrdhup(void) { return EPOLLRDHUP; }
static inline uint32_t cgs_epollet(void) { return EPOLLET; }

static inline int cgs_efd_flags(void) { return EFD_NONBLOCK | EFD_CLOEXEC; }
static inline int cgs_tfd_flags(void) { return TFD_NONBLOCK | TFD_CLOEXEC; }
static inline int cgs_sock_flags(void) { return SOCK_NONBLOCK | SOCK_CLOEXEC; }

/// accept4(2): accepts and sets SOCK_NONBLOCK|SOCK_CLOEXEC in one call.
int cgs_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

/// `epoll_event` is packed on x86_64; building it in C avoids relying on Swift's view of its layout.
static inline struct epoll_event cgs_make_event(uint32_t events, uint64_t data) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = data;
    return event;
}
static inline uint64_t cgs_event_data(const struct epoll_event *event) { return event->data.u64; }
static inline uint32_t cgs_event_flags(const struct epoll_event *event) { return event->events; }

/// The event loop running on the calling thread (an unretained pointer), or NULL: a C thread-local,
/// which Swift cannot declare.
void *cgs_current_loop(void);
void cgs_set_current_loop(void *loop);
/// The running loop's slot tag (see `EventLoop.localTag`), or -1 off every loop thread.
long cgs_current_loop_tag(void);
void cgs_set_current_loop_tag(long tag);

/// getrandom(2), which Swift's Glibc module does not export: the kernel CSPRNG without a descriptor.
static inline ssize_t cgs_getrandom(void *buffer, size_t length) { return getrandom(buffer, length, 0); }

/// malloc_trim(3): hands free heap pages (in every arena, not only at the top) back to the kernel.
static inline int cgs_malloc_trim(void) { return malloc_trim(0); }

/// mallopt(M_ARENA_MAX): the most arenas glibc creates from now on (1 on success).
static inline int cgs_set_malloc_arena_limit(int arenas) { return mallopt(M_ARENA_MAX, arenas); }

#endif
