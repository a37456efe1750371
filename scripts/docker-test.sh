#!/usr/bin/env bash
# make docker-test: the image and the docker-compose stacks, tested with a real Docker engine.
#
# Builds the image through docker/docker-compose.yml (the build stage runs the unit tests),
# builds the example handler library on the host, starts the local stack and waits for Docker to
# call it healthy, then checks: /invoke/echo, an async invoke (seen running in the logs), the
# Invoke API with the AWS CLI, the user's mounted handler, that the gateway runs as non-root (as
# PID 1), and that `docker stop` lets a call in flight finish and the container exit 0 within a
# few seconds. Then the same for docker/docker-compose.lambda.yml: the gateway in lambda mode in
# front of a second gateway, in local mode, standing in for AWS Lambda.
#
# Needs a Docker engine and docker-compose; when either is missing (or the base image is), runs
# ../shared/tools/docker-env.sh if it is there. Published ports are bound to 127.0.0.1 only, on
# free ports. Every container and network it starts is removed on exit, pass or fail.

# The expected answers are regular expressions in single quotes: "$" in them is not expansion.
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=debian:bookworm-slim
DOCKER_ENV=../shared/tools/docker-env.sh
AWS_CLI=/usr/bin/aws
STOP_MAX_S=5  # docker stop with a 1.5 s call in flight must be done within this
PROJECT="lgw-dockertest-$$"
LOCAL_FILE=docker/docker-compose.yml
LAMBDA_FILE=docker/docker-compose.lambda.yml

PASSED=0
FAILED=0
log() { printf '%s docker-test: %s\n' "$(date +%T)" "$*" >&2; }
ok() {
    PASSED=$((PASSED + 1))
    log "ok: $*"
}
fail() {
    FAILED=1
    log "FAIL: $*"
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# ---- the engine ----
if ! docker info >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1 \
    || ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    [ -x "$DOCKER_ENV" ] || fail "no Docker engine, docker-compose or $BASE_IMAGE, and no $DOCKER_ENV to set them up"
    log "setting up Docker with $DOCKER_ENV"
    "$DOCKER_ENV" >&2
fi

# The stacks take AWS settings from this shell: start from none, so that nothing from the
# machine's own environment (real credentials, a profile) reaches a container or the AWS CLI.
for v in $(compgen -e | grep '^AWS_' || true); do unset "$v"; done

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# compose FILE ARGS...: docker-compose on one stack; each file is its own project.
compose() {
    local f=$1
    shift
    docker-compose -p "$PROJECT-$(basename "$f" .yml | tr -c 'a-z0-9\n' '-')" -f "$f" "$@"
}

TMP=$(mktemp -d /tmp/lgw-docker-test.XXXXXX)
STACKS=()
cleanup() {
    rc=$?
    set +e
    for f in "${STACKS[@]}"; do
        if [ "$rc" -ne 0 ]; then
            log "logs of $f:"
            compose "$f" --profile emulator logs --no-color --tail=40 >&2
        fi
        compose "$f" --profile emulator down -v --remove-orphans >/dev/null 2>&1
    done
    rm -rf "$TMP"
    [ "$rc" -eq 0 ] || [ "$FAILED" -ne 0 ] || FAILED=1
    printf 'docker-test: %d passed, %d failed\n' "$PASSED" "$FAILED"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until the container is healthy (Docker's HEALTHCHECK), failing if it stops first.
wait_healthy() {
    local cid=$1 t0 state health
    t0=$(now)
    for _ in $(seq 1 120); do
        state=$(docker inspect -f '{{.State.Status}}' "$cid")
        health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$cid")
        [ "$health" = healthy ] && {
            log "$(docker inspect -f '{{.Name}}' "$cid" | tr -d /) healthy after $(since "$t0") s"
            return 0
        }
        [ "$state" = running ] || {
            docker logs "$cid" >&2
            fail "container $cid is $state (exit $(docker inspect -f '{{.State.ExitCode}}' "$cid"))"
        }
        sleep 0.5
    done
    fail "container $cid not healthy after 60 s (health: $health)"
}

# logs_have CID TEXT: the container's log has TEXT. (Not `docker logs | grep -q`: with pipefail,
# grep quitting at the first match fails the pipe.)
logs_have() {
    docker logs "$1" >"$TMP/logs" 2>&1
    grep -qF -- "$2" "$TMP/logs"
}

# post PORT PATH BODY: prints "STATUS BODY".
post() {
    curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$3" "http://127.0.0.1:$1$2" >"$TMP/status"
    printf '%s %s' "$(cat "$TMP/status")" "$(cat "$TMP/body")"
}

# expect WHAT GOT PATTERN: GOT must match the extended regex PATTERN (anchored).
expect() {
    if [[ "$2" =~ ^$3$ ]]; then
        ok "$1"
    else
        fail "$1: got '$2', want /$3/"
    fi
}

# stop_clean CID PORT: stops the container while a 1.5 s call is in flight; the call must get
# its 200 (drained, not cut), the container must exit 0 within STOP_MAX_S.
stop_clean() {
    local cid=$1 port=$2 t0 took code
    curl -sS --max-time 10 -o "$TMP/inflight" -w '%{http_code}' -d '{"ms":1500}' \
        "http://127.0.0.1:$port/invoke/sleep" >"$TMP/inflight.status" &
    local curl_pid=$!
    sleep 0.3
    t0=$(now)
    docker stop -t 30 "$cid" >/dev/null
    took=$(since "$t0")
    wait "$curl_pid" || fail "the call in flight during docker stop failed"
    expect "call in flight during docker stop answered" "$(cat "$TMP/inflight.status")" 200
    code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
    expect "exit code after docker stop" "$code" 0
    logs_have "$cid" '"event":"shutdown","signal":"SIGTERM"' \
        || fail "no SIGTERM shutdown line in the log"
    awk -v t="$took" -v m="$STOP_MAX_S" 'BEGIN { exit !(t < m) }' \
        || fail "docker stop took $took s (at most $STOP_MAX_S s)"
    ok "docker stop took $took s with a 1.5 s call in flight"
}

# ---- build ----
t0=$(now)
make -s -C docker/example-handler
log "example handler built: docker/example-handler/build/liborders.so"
# The Swagger UI files the binary embeds, fetched here rather than inside the image build (see
# .dockerignore): a no-op when openapi/ui/node_modules is up to date, as after `make`.
if [ -f openapi/ui/package-lock.json ]; then
    scripts/node-tools.sh openapi/ui
fi
compose "$LOCAL_FILE" build gateway >"$TMP/build.log" 2>&1 || {
    tail -n 40 "$TMP/build.log" >&2
    fail "the image did not build (the build stage runs the unit tests)"
}
log "image built in $(since "$t0") s: $(docker image inspect -f '{{.Size}}' lambda-gateway:local |
    awk '{ printf "%.1f MB", $1 / 1e6 }') (base $BASE_IMAGE: $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" |
    awk '{ printf "%.1f MB", $1 / 1e6 }'))"

# ---- local mode ----
PORT=$(free_port)
STACKS+=("$LOCAL_FILE")
t0=$(now)
LGW_PORT=$PORT compose "$LOCAL_FILE" up -d
CID=$(compose "$LOCAL_FILE" ps -q gateway)
log "local stack up on 127.0.0.1:$PORT"
wait_healthy "$CID"

expect "published on loopback only" \
    "$(docker inspect -f '{{range $p, $b := .NetworkSettings.Ports}}{{range $b}}{{.HostIp}} {{end}}{{end}}' "$CID")" \
    "(127\.0\.0\.1 )+"
expect "POST /invoke/echo" "$(post "$PORT" /invoke/echo '{"a":[1,2,"x"]}')" '200 \{"a": ?\[1, ?2, ?"x"\]\}'
expect "POST /invoke-async/orders" "$(post "$PORT" /invoke-async/orders '{"orderId":4242}')" \
    '202 \{"status": ?202, ?"requestId": ?"[0-9a-f-]{36}"\}'
for _ in $(seq 1 20); do
    logs_have "$CID" 'looking up order 4242 in orders-dev' && break
    sleep 0.25
done
logs_have "$CID" 'looking up order 4242 in orders-dev' \
    || fail "the async invocation did not run (no log line from it)"
ok "the async invocation ran"
expect "POST /invoke/orders (mounted handler library)" "$(post "$PORT" /invoke/orders '{"orderId":7}')" \
    '200 \{"orderId": ?7, ?"table": ?"orders-dev", ?"requestId": ?"[0-9a-f-]{36}"\}'
expect "POST /invoke/orders raising" "$(post "$PORT" /invoke/orders '{"orderId":"x"}')" \
    '502 \{"error": ?\{"type": ?"LambdaExecuteError".*"orderId must be an integer".*'
expect "user in the image" "$(docker inspect -f '{{.Config.User}}' "$CID")" '10001:10001'
expect "uid of PID 1 (the gateway)" \
    "$(docker exec "$CID" sh -c 'tr -d "\0" </proc/1/cmdline; awk "/^Uid:/ { print \" \" \$2 }" /proc/1/status')" \
    '/usr/local/bin/lambda-gateway [1-9][0-9]*'
expect "id -u in the container" "$(docker exec "$CID" id -u)" '[1-9][0-9]*'

# The Invoke API face, with the real AWS CLI and dummy credentials.
aws_invoke() {
    env -i PATH="$PATH" HOME="$TMP" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$TMP/none" \
        AWS_SHARED_CREDENTIALS_FILE="$TMP/none" AWS_PAGER= \
        "$AWS_CLI" lambda invoke --endpoint-url "http://127.0.0.1:$1" --function-name "$2" \
        --cli-binary-format raw-in-base64-out --payload "$3" --output json "$TMP/aws-out" \
        >"$TMP/aws-meta" 2>"$TMP/aws-err" || {
        printf 'aws lambda invoke failed: %s' "$(tr '\n' ' ' <"$TMP/aws-err")"
        return 0
    }
    printf '%s %s' "$(tr -d ' \n' <"$TMP/aws-meta")" "$(cat "$TMP/aws-out")"
}
expect "aws lambda invoke echo" "$(aws_invoke "$PORT" echo '{"k":"v"}')" \
    '\{"StatusCode":200,"ExecutedVersion":"\$LATEST"\} \{"k": ?"v"\}'
expect "aws lambda invoke orders (function error)" "$(aws_invoke "$PORT" orders '{"orderId":"x"}')" \
    '\{"StatusCode":200,"FunctionError":"Unhandled","ExecutedVersion":"\$LATEST"\} .*"errorType": ?"ValueError".*'

stop_clean "$CID" "$PORT"
compose "$LOCAL_FILE" down -v --remove-orphans >/dev/null 2>&1

# ---- lambda mode, in front of a local-mode gateway standing in for AWS Lambda ----
PORT=$(free_port)
STACKS+=("$LAMBDA_FILE")
LGW_PORT=$PORT AWS_ENDPOINT_URL_LAMBDA=http://lambda:8080 AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=example-secret \
    compose "$LAMBDA_FILE" --profile emulator up -d
CID=$(compose "$LAMBDA_FILE" ps -q gateway)
UPSTREAM=$(compose "$LAMBDA_FILE" --profile emulator ps -q lambda)
log "lambda stack up on 127.0.0.1:$PORT"
wait_healthy "$UPSTREAM"
wait_healthy "$CID"
expect "lambda mode announced" "$(docker logs "$CID" 2>/dev/null | sed -n 1p)" \
    'lambda-gateway .* listening on http://0\.0\.0\.0:8080 \(lambda mode\).*'
expect "lambda mode: POST /invoke/echo" "$(post "$PORT" /invoke/echo '{"via":"lambda"}')" \
    '200 \{"via": ?"lambda"\}'
expect "lambda mode: POST /invoke/hello" "$(post "$PORT" /invoke/hello '{"name":"Ann"}')" \
    '200 .*Hello, Ann!.*'
expect "lambda mode: POST /invoke-async/echo" "$(post "$PORT" /invoke-async/echo '{}')" \
    '202 \{"status": ?202, ?"requestId": ?"[0-9a-f-]{36}"\}'
expect "lambda mode: not allow-listed" "$(post "$PORT" /invoke/sleep '{"ms":1}')" \
    '403 .*"AccessDeniedException".*'
# allow-listed, but the stand-in has no "orders": Lambda's 404 passed on
expect "lambda mode: function Lambda does not know" "$(post "$PORT" /invoke/orders '{}')" \
    '404 .*"ResourceNotFoundException".*'
expect "lambda mode: aws lambda invoke echo" "$(aws_invoke "$PORT" echo '{"k":"v"}')" \
    '\{"StatusCode":200,"ExecutedVersion":"\$LATEST"\} \{"k": ?"v"\}'
# The calls really went to the stand-in, signed with the credentials given in the environment:
# it checks every signature (emulator.config.json) and logs each call.
docker logs "$UPSTREAM" >"$TMP/upstream.log" 2>&1
expect "stand-in Lambda: signed calls answered" \
    "$(grep -cE '"path":"/2015-03-31/functions/(echo|hello)/invocations".*"status":20[02]' "$TMP/upstream.log")" \
    '[4-9]'
expect "stand-in Lambda: no refused signature" \
    "$(grep -cE '"status":(400|403)' "$TMP/upstream.log" || true)" 0
t0=$(now)
docker stop -t 30 "$CID" >/dev/null
expect "lambda mode: exit code after docker stop" "$(docker inspect -f '{{.State.ExitCode}}' "$CID")" 0
ok "lambda-mode gateway stopped in $(since "$t0") s"
