// The shim is header-only; this file exists because SwiftPM requires a C target to have a source.
#include "CGatewaySystem.h"
