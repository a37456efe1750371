/* badabi.c - a handler library built against another ABI: loading it must be refused. */
#include "lgw_handler.h"

static json_t *h(struct lgw_exec_ctx *ctx)
{
    return json_incref(lgw_event(ctx));
}

const struct lgw_handler_def lgw_handlers[] = {
    {LGW_HANDLER_ABI + 1, "old", h, NULL, 0},
    {0, NULL, NULL, NULL, 0},
};
