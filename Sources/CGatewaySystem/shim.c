// accept4 is a GNU extension: it is declared only under _GNU_SOURCE, which must precede every
// system header, so it is wrapped here rather than in the shared header.
#define _GNU_SOURCE
#include <sys/socket.h>
#include "CGatewaySystem.h"

int cgs_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return accept4(fd, address, length, flags);
}

static _Thread_local void *current_loop = NULL;
static _Thread_local long current_loop_tag = -1;

void *cgs_current_loop(void) { return current_loop; }
void cgs_set_current_loop(void *loop) { current_loop = loop; }
long cgs_current_loop_tag(void) { return current_loop_tag; }
void cgs_set_current_loop_tag(long tag) { current_loop_tag = tag; }
