#ifndef C_ZLIB_SHIM_H
#define C_ZLIB_SHIM_H

// Debian's zlib (zlib1g-dev): compress2 / uncompress for the shared cache's envelopes.
#include <zlib.h>

#endif
