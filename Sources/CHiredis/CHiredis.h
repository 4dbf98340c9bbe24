#ifndef C_HIREDIS_SHIM_H
#define C_HIREDIS_SHIM_H

// Debian's hiredis 0.14 (libhiredis-dev): the synchronous reply types and the asynchronous context
// whose event hooks GatewayRedis drives from the gateway's own epoll loop.
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

// REDIS_CONNECTED is a flag macro inside redisContext.flags; Swift imports it, but reading it through
// a function keeps the one C detail GatewayRedis depends on in one place.
static inline int chiredis_is_connected(const redisAsyncContext *context) {
    return (context->c.flags & REDIS_CONNECTED) != 0;
}

#endif
