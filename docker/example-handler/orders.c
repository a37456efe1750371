/* orders.c: a handler library for lambda-gateway (the README's example), served by the
 * docker-compose stack in docker/: `make`, then `docker-compose up` mounts build/ at /handlers. */
#include "lgw_handler.h"

static json_t *orders(struct lgw_exec_ctx *ctx)
{
    json_t *id = json_object_get(lgw_event(ctx), "orderId");
    const char *table = lgw_config_get(ctx, "TABLE", "orders");

    if (!json_is_integer(id))
        return lgw_raise(ctx, "ValueError", "orderId must be an integer");
    lgw_log(ctx, "looking up order %lld in %s", (long long)json_integer_value(id), table);
    return json_pack("{s:I,s:s,s:s}", "orderId", json_integer_value(id), "table", table,
                     "requestId", lgw_context(ctx)->request_id);
}

const struct lgw_handler_def lgw_handlers[] = {
    {LGW_HANDLER_ABI, "orders", orders, "looks an order up", 0},
    {0},
};
