/* CLibevent: libevent headers for Swift. libc's <sys/types.h> comes first so every module sees one fd_set. */
#ifndef SWITCHYARD_CLIBEVENT_SHIM_H
#define SWITCHYARD_CLIBEVENT_SHIM_H
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/http.h>
#include <event2/util.h>

/* MARK: Macro wrappers */
static inline struct event *sy_evsignal_new(struct event_base *base, int sig, event_callback_fn cb, void *arg) {
    return evsignal_new(base, sig, cb, arg);
}
static inline int sy_evtimer_add(struct event *ev, const struct timeval *tv) { return evtimer_add(ev, tv); }
static inline struct event *sy_evtimer_new(struct event_base *base, event_callback_fn cb, void *arg) {
    return evtimer_new(base, cb, arg);
}
#endif
