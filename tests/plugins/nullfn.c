/* nullfn.c - a handler entry with no function (the seed's "not a callable"): refused. */
#include "lgw_handler.h"

const struct lgw_handler_def lgw_handlers[] = {
    {LGW_HANDLER_ABI, "ghost", NULL, NULL, 0},
    {0, NULL, NULL, NULL, 0},
};
