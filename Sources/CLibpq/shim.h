/* CLibpq: libpq for Switchyard's own side-channel connections (version reporting now; health probes later). */
#ifndef SWITCHYARD_CLIBPQ_SHIM_H
#define SWITCHYARD_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
