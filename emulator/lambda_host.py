"""The local Lambda service: the Invoke API for callers and the Lambda Runtime API for function processes, on one
port.

    python -m emulator.lambda_host --port L --moto-port M --endpoint ROUTER_URL --state-dir DIR

A function's process is started at its first invocation, from
  BA_LAMBDA_MAP: a JSON file {"function name": "program" | ["program", "arg", ...]} (relative paths are
                 relative to the file), else
  BA_LAMBDA_DIR/<function name>, an executable (a `lambda_runtime` binary, or any Runtime API client).
It gets AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:L/<function name> (<function name>~N for the Nth extra
process of the pool, see below): each process has its own path prefix, hence its own queue. The `http://` is
needed: lambda_runtime_api_client 1.x parses the value as a URI, keeps its path as a prefix of every Runtime API
path, and panics ("Unable to convert to URL") on `host:port/path`, which is not a URI. Clients that expect
bare `host:port` (the Python and Node runtimes) cannot take a prefix.

If the function exists in moto (CreateFunction), its Environment, Timeout, MemorySize (recorded, not enforced)
and Handler (`_HANDLER`) apply, and its processes get credentials that name its Role (emulator/identity.py), so
that their calls act in the role's account and are checked against that role; a function that only exists as an
executable runs with DEFAULT_TIMEOUT_SECONDS and the dummy credentials. As Lambda runs concurrent invocations in
separate execution environments, each function has a pool of up to POOL_SIZE processes, each serving one
invocation at a time: an invocation goes to an idle process, else to a new one while the pool is not full, else
waits in the queue of the least busy. Function errors are answered as Lambda does:
HTTP 200, `X-Amz-Function-Error: Unhandled`, the error document {"errorType", "errorMessage"} as the payload,
which is what Step Functions matches Retry and Catch against. Timeouts answer `Sandbox.Timedout` and kill
the process; a process that exits answers `Runtime.ExitError`. Logs go to <state dir>/logs/lambda/<name>.log.
"""

import argparse
import collections
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

from emulator import httpbase, identity, processes

INVOKE = re.compile(r"^/2015-03-31/functions/(?P<function>[^/?]+)/invocations(\?.*)?$")
RUNTIME = re.compile(r"^/(?P<name>[^/]+)/2018-06-01/runtime/"
                     r"(?:invocation/(?:(?P<next>next)|(?P<id>[^/]+)/(?P<outcome>response|error))|init/error)$")

DEFAULT_TIMEOUT_SECONDS = 60  # for functions not created in moto; AWS's default of 3 s is too short for tests
DEFAULT_MEMORY_MB = 128  # AWS's default
# Lambda gives a function's init phase 10 s of its own before the first invocation's timeout starts.
INIT_SECONDS = 10
DEFAULT_ACCOUNT = processes.DEFAULT_ACCOUNT
# Enough for the races the flows must survive (two executions of one snapshot at the same instant) without
# starting a process per invocation on a 2-core test machine.
POOL_SIZE = 4


def error_document(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class Invocation:
    def __init__(self, request_id: str, payload: bytes):
        self.request_id = request_id
        self.payload = payload
        self.deadline = 0.0  # set when the runtime takes it
        self.taken = threading.Event()
        self.done = threading.Event()
        self.body = b""
        self.error = False

    def complete(self, body: bytes, error: bool) -> None:
        if not self.done.is_set():  # the first outcome wins: a late response after a timeout is dropped
            self.body, self.error = body, error
            self.done.set()
            self.taken.set()  # one that ends before a runtime took it (a failed init) has no more to wait for


class Function:
    """One process of a function's pool: its queue of invocations and its process (started when needed). `slot`
    is its Runtime API prefix; the pool's processes share the function's log."""

    def __init__(self, name: str, slot: str, arn: str, argv: list[str], env: dict, timeout: float, memory: int,
                 state_dir: Path):
        self.name, self.arn, self.argv, self.timeout = slot, arn, argv, timeout
        self.env = {**env, "AWS_LAMBDA_RUNTIME_API": f"{env['AWS_LAMBDA_RUNTIME_API']}/{slot}"}
        # Recorded (health, AWS_LAMBDA_FUNCTION_MEMORY_SIZE), not enforced: no cgroup limits a local process.
        self.memory = memory
        self.log_path = state_dir / "logs" / "lambda" / f"{name}.log"
        self.pid_path = state_dir / "pids" / f"fn-{slot}.pid"
        self.cwd = str(Path(argv[0]).parent) if "/" in argv[0] else None  # Lambda runs in its task root
        self.cond = threading.Condition()
        self.pending: collections.deque[Invocation] = collections.deque()
        self.in_flight: Invocation | None = None
        self.proc = None
        self.generation = 0  # which process a Runtime API request came from: a dead one's requests are void
        self.polled = False  # whether the current process got through its init to ask for work
        self.init_error: bytes | None = None

    def enqueue(self, invocation: Invocation) -> None:
        with self.cond:
            self.pending.append(invocation)
            try:
                self.ensure_running()
            except OSError as error:
                self.pending.remove(invocation)
                invocation.complete(error_document("Runtime.InvalidEntrypoint", str(error)), error=True)
            self.cond.notify_all()

    def await_outcome(self, invocation: Invocation) -> None:
        if not invocation.taken.wait(INIT_SECONDS + self.timeout):
            invocation.complete(error_document(
                "Sandbox.Timedout", f"RequestId: {invocation.request_id} Error: the function's process did not "
                                    f"ask for an invocation within {INIT_SECONDS + self.timeout} seconds"), True)
        elif not invocation.done.wait(max(0.0, invocation.deadline - time.time())):
            invocation.complete(error_document(
                "Sandbox.Timedout",
                f"RequestId: {invocation.request_id} Error: Task timed out after {self.timeout:.2f} seconds"), True)
            self.kill()  # its runtime is stuck in this invocation: the next one gets a fresh process

    def ensure_running(self) -> None:  # with self.cond held
        if self.proc is not None:
            return
        self.generation += 1
        self.polled, self.init_error = False, None
        self.proc = processes.spawn(self.argv, env=self.env, cwd=self.cwd, log_path=self.log_path,
                                    pid_path=self.pid_path)
        print(f"function {self.name}: started pid {self.proc.pid}", file=sys.stderr)
        threading.Thread(target=self.watch, args=(self.proc,), daemon=True).start()

    def queued(self) -> int:
        """How many invocations it has, running or waiting."""
        with self.cond:
            return len(self.pending) + (self.in_flight is not None)

    def kill(self) -> None:
        with self.cond:
            if self.proc is not None:
                processes.signal_group(self.proc.pid, signal.SIGKILL)

    def watch(self, proc) -> None:
        returncode = proc.wait()
        processes.signal_group(proc.pid, signal.SIGKILL)  # whatever it left behind dies with the sandbox
        with self.cond:
            if self.proc is not proc:
                return
            self.pid_path.unlink(missing_ok=True)
            self.proc = None
            self.generation += 1
            status = processes.exit_code(returncode)
            print(f"function {self.name}: pid {proc.pid} exited with status {status}", file=sys.stderr)
            if self.in_flight is not None:
                self.in_flight.complete(error_document("Runtime.ExitError", (
                    f"RequestId: {self.in_flight.request_id} Error: Runtime exited with error: "
                    f"exit status {status}")), error=True)
                self.in_flight = None
            if self.pending and self.polled:
                self.ensure_running()  # it worked before: a fresh process takes the queue
            else:  # it never got through its init: fail what waits rather than restart it in a loop
                while self.pending:
                    self.pending.popleft().complete(self.init_error or error_document(
                        "Runtime.ExitError", f"Error: Runtime exited during init with exit status {status}"), True)
            self.cond.notify_all()

    def next_invocation(self) -> Invocation | None:
        """The Runtime API's long poll: the next invocation for the current process, or None if that process
        has gone meanwhile."""
        with self.cond:
            generation = self.generation
            self.polled = True
            while self.generation == generation:
                while self.pending and self.pending[0].done.is_set():  # its caller gave up
                    self.pending.popleft()
                if self.pending:
                    invocation = self.pending.popleft()
                    invocation.deadline = time.time() + self.timeout
                    self.in_flight = invocation
                    invocation.taken.set()
                    return invocation
                self.cond.wait()
            return None

    def complete(self, request_id: str, body: bytes, error: bool) -> bool:
        with self.cond:
            if self.in_flight is None or self.in_flight.request_id != request_id:
                return False
            self.in_flight.complete(body, error)
            self.in_flight = None
            return True

    def stop(self) -> None:
        with self.cond:
            proc = self.proc
        if proc is not None:
            processes.stop_process(proc)


class Pool:
    """A function's processes, up to POOL_SIZE, made by `make(slot)` as invocations need them."""

    def __init__(self, name: str, make, timeout: float, memory: int):
        self.name, self.make = name, make
        self.timeout, self.memory = timeout, memory  # what every process of the pool runs with (health)
        self.lock = threading.Lock()
        self.slots: list[Function] = []

    def invoke(self, invocation: Invocation, wait: bool) -> None:
        """Queues `invocation` on the process chosen as the module's docstring says (chosen and queued under the
        pool's lock, so two invocations at the same instant never both pick one idle process), then waits for
        its outcome unless `wait` is false."""
        with self.lock:
            queued = [(slot.queued(), slot) for slot in self.slots]
            idle = [slot for count, slot in queued if count == 0]
            if idle:
                slot = idle[0]
            elif len(self.slots) < POOL_SIZE:
                slot = self.make(self.name if not self.slots else f"{self.name}~{len(self.slots)}")
                self.slots.append(slot)
            else:
                slot = min(queued, key=lambda pair: pair[0])[1]
            slot.enqueue(invocation)
        if wait:
            slot.await_outcome(invocation)


class LambdaHost(httpbase.Server):
    def __init__(self, port: int, moto_port: int, endpoint: str, state_dir: Path):
        super().__init__(("127.0.0.1", port), LambdaHandler)
        self.port, self.moto_port, self.endpoint, self.state_dir = port, moto_port, endpoint, state_dir
        self.functions: dict[str, Pool] = {}
        self.slots: dict[str, Function] = {}  # by Runtime API prefix
        self.lock = threading.Lock()

    def function(self, name: str, headers) -> Pool:
        """The function `name`, set up at its first invocation; LookupError if it exists nowhere."""
        with self.lock:
            if name not in self.functions:
                self.functions[name] = self.load(name, headers)
            return self.functions[name]

    def load(self, name: str, headers) -> Pool:
        config = self.moto_configuration(name, headers)
        argv = executable(name)
        if argv is None:
            where = "exists in moto, but no executable was" if config else "not found: no executable"
            raise LookupError(f"Function {name} {where} found (BA_LAMBDA_MAP, BA_LAMBDA_DIR)")
        config = config or {}
        memory = config.get("MemorySize") or DEFAULT_MEMORY_MB
        credential = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/", headers.get("Authorization", ""))
        region = credential.group(1) if credential else "us-east-1"
        arn = config.get("FunctionArn") or f"arn:aws:lambda:{region}:{DEFAULT_ACCOUNT}:function:{name}"
        env = processes.emulated_environment(self.endpoint, region)
        env.update((config.get("Environment") or {}).get("Variables") or {})
        if config.get("Role"):  # credentials that name its role: it acts in the role's account (emulator/identity.py)
            env.update(identity.credentials(config["Role"]))
        env.update(  # the variables Lambda reserves: the function's configuration cannot change them
            AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{self.port}",  # the slot's prefix is added by Function
            AWS_LAMBDA_FUNCTION_NAME=name,
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(memory),
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{name}",
            AWS_LAMBDA_LOG_STREAM_NAME=f"emulator/{name}",
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_REGION=region,
            AWS_DEFAULT_REGION=region,
            _HANDLER=config.get("Handler") or name,
            LAMBDA_TASK_ROOT=str(Path(argv[0]).parent),
        )
        timeout = config.get("Timeout") or DEFAULT_TIMEOUT_SECONDS

        def make(slot: str) -> Function:
            with self.lock:
                self.slots[slot] = Function(name, slot, arn, argv, env, timeout, memory, self.state_dir)
                return self.slots[slot]
        return Pool(name, make, timeout, memory)

    def moto_configuration(self, name: str, headers) -> dict | None:
        """The function's configuration if it was created in moto (the caller's headers carry its account: the
        router's identity.ACCOUNT_HEADER, else the access key)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=10)
        forwarded = {key: value for key, value in headers.items()
                     if key.lower() in ("authorization", identity.ACCOUNT_HEADER)}
        connection.request("GET", f"/2015-03-31/functions/{name}", headers=forwarded)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return json.loads(body).get("Configuration") if response.status == 200 else None

    def stop_functions(self) -> None:
        threads = [threading.Thread(target=function.stop) for function in list(self.slots.values())]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def executable(name: str) -> list[str] | None:
    mapping_file = os.environ.get("BA_LAMBDA_MAP")
    if mapping_file:
        mapping = json.loads(Path(mapping_file).read_text())
        if name in mapping:
            argv = [mapping[name]] if isinstance(mapping[name], str) else list(mapping[name])
            if "/" in argv[0]:
                argv[0] = str(Path(mapping_file).parent / argv[0])  # absolute paths stay as they are
            return argv
    directory = os.environ.get("BA_LAMBDA_DIR")
    if directory:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    return None


def function_name(identifier: str) -> str:
    """A name, a partial or full ARN, with or without a qualifier -> the bare name."""
    if ":function:" in identifier:
        identifier = identifier.split(":function:", 1)[1]
    return identifier.split(":", 1)[0]


class LambdaHandler(httpbase.Handler):
    server: LambdaHost

    def do_GET(self) -> None:
        match = RUNTIME.match(self.path)
        if self.path == "/_emulator/health":
            self.send_json(200, {"functions": {name: {"timeout": function.timeout, "memory": function.memory}
                                               for name, function in sorted(self.server.functions.items())}})
        elif match and match["next"]:
            self.runtime_next(match["name"])
        else:
            self.send_json(404, {"message": f"no such path: {self.path}"})

    def do_POST(self) -> None:
        invoke, runtime = INVOKE.match(self.path), RUNTIME.match(self.path)
        if invoke:
            self.invoke(function_name(unquote(invoke["function"])))
        elif runtime and runtime["outcome"]:
            self.runtime_outcome(runtime["name"], runtime["id"], runtime["outcome"] == "error")
        elif runtime:
            self.runtime_init_error(runtime["name"])
        else:
            self.send_json(404, {"message": f"no such path: {self.path}"})

    def invoke(self, name: str) -> None:
        payload = self.read_body()
        request_id = str(uuid.uuid4())
        try:
            function = self.server.function(name, self.headers)
        except LookupError as error:
            return self.send_json(404, {"Type": "User", "message": str(error)},
                                  {"x-amzn-ErrorType": "ResourceNotFoundException", "x-amzn-RequestId": request_id})
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return self.send(204, headers={"x-amzn-RequestId": request_id})
        invocation = Invocation(request_id, payload or b"{}")
        function.invoke(invocation, wait=invocation_type != "Event")
        if invocation_type == "Event":
            return self.send(202, headers={"x-amzn-RequestId": request_id})
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST",
                   "Content-Type": "application/json"}
        if invocation.error:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self.send(200, invocation.body, headers)

    def runtime_function(self, name: str) -> Function | None:
        function = self.server.slots.get(name)
        if function is None:
            self.send_json(404, {"errorType": "UnknownFunction", "errorMessage": name})
        return function

    def runtime_next(self, name: str) -> None:
        function = self.runtime_function(name)
        if function is None:
            return
        invocation = function.next_invocation()
        if invocation is None:  # its process has gone
            return self.send_json(410, {"errorType": "ProcessGone", "errorMessage": name})
        self.send(200, invocation.payload, {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(invocation.deadline * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": function.arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        })

    def error_body(self) -> bytes:
        """The runtime's error report as {"errorType", "errorMessage"}, whatever shape it was sent in."""
        body = self.read_body()
        try:
            document = json.loads(body)
            if isinstance(document, dict) and "errorType" in document:
                return body
        except ValueError:
            pass
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type", "Unhandled")
        return error_document(error_type, body.decode(errors="replace"))

    def runtime_outcome(self, name: str, request_id: str, error: bool) -> None:
        function = self.runtime_function(name)
        if function is None:
            return
        body = self.error_body() if error else self.read_body()
        if function.complete(request_id, body, error):
            self.send_json(202, {"status": "OK"})
        else:
            self.send_json(400, {"errorType": "InvalidRequestID", "errorMessage": request_id})

    def runtime_init_error(self, name: str) -> None:
        function = self.runtime_function(name)
        if function is None:
            return
        body = self.error_body()
        with function.cond:
            function.init_error = body
        self.send_json(202, {"status": "OK"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--moto-port", type=int, required=True)
    parser.add_argument("--endpoint", required=True, help="the router's URL, the functions' AWS_ENDPOINT_URL")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    host = LambdaHost(args.port, args.moto_port, args.endpoint, args.state_dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Lambda host on 127.0.0.1:{args.port}", file=sys.stderr)
    try:
        host.serve_forever()
    finally:
        host.stop_functions()


if __name__ == "__main__":
    main()
