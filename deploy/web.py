"""Serve the exported models in a web page (deploy/web/) and drive it in headless Chromium.

python -m deploy.web --model-dir DIR                     serve the page; open the URL it prints yourself
python -m deploy.web --model-dir DIR --headless --json R  run it in headless Chromium, write what it found

The page runs every .onnx and .ort file in DIR with onnxruntime-web's WebAssembly backend. The server is Python's
http.server in a thread, on 127.0.0.1 and a free port; it sends COOP/COEP, so the page is cross-origin
isolated: multi-threaded WASM works and the page's timer has 5 us resolution instead of 100 us.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from common.launch import run_captured
from common.timing import median
from deploy.bench import LOADS, external_data_files

WEB_DIR = Path(__file__).resolve().parent / "web"
ORT_DIST = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
# All the page needs from onnxruntime-web: the WASM-only ES module, the module the runtime loads for
# its threads, and the WebAssembly binary (14 MB).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
NPM_HINT = "(cd deploy/web && npm ci --ignore-scripts)"
BROWSER_HINT = "apt-get install chromium chromium-driver (Debian), pip install selenium"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")
WINDOW = (1000, 760)  # the screenshot's size in CSS pixels
MODEL_SUFFIXES = (".onnx", ".ort")


def chromium() -> tuple[str, str] | None:
    """(browser, driver) paths when a Chromium and its chromedriver are installed."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def runtime_installed() -> bool:
    """onnxruntime-web's files are in node_modules: all a browser of your own needs."""
    return all((ORT_DIST / name).is_file() for name in ORT_FILES)


def unavailable_reason() -> str | None:
    """None when the page can run in a headless browser here, else why not (and what to do)."""
    if chromium() is None:
        return f"no Chromium with chromedriver: {BROWSER_HINT}"
    if find_spec("selenium") is None:
        return "selenium is not installed: pip install -e '.[web]'"
    if not runtime_installed():
        return f"onnxruntime-web is not installed: {NPM_HINT}"
    return None


def install() -> None:
    """npm ci with the lock file; the package has no install script worth running (offline-safe)."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed")
    code, _, stderr = run_captured(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], None, 600,
                                   cwd=WEB_DIR)
    if code != 0:
        raise RuntimeError(f"npm ci failed: {stderr.strip() or 'timed out'}")


def models_in(model_dir: Path) -> list[Path]:
    """The files the page runs: ONNX models and ONNX Runtime's .ort ones."""
    return sorted(p for suffix in MODEL_SUFFIXES for p in Path(model_dir).glob(f"*{suffix}"))


def external_data(path: Path) -> list[str]:
    """external_data_files, or none for a file that is no readable model (the page says what is
    wrong) or an .ort file (it holds its tensors)."""
    from google.protobuf.message import DecodeError

    if path.suffix != ".onnx":
        return []
    try:
        return external_data_files(path)
    except (DecodeError, OSError):
        return []


def page_request(models: list[Path], x: np.ndarray, batches: tuple[int, ...], repeats: int, warmup: int) -> dict:
    """request.json: what the page runs, on which input, how often."""
    return {"models": [{"name": m.name, "url": f"models/{m.name}",
                        "external_data": [{"path": f, "url": f"models/{f}"} for f in external_data(m)]}
                       for m in models],
            "shape": list(x.shape), "dtype": str(x.dtype), "data": x.ravel().tolist(),
            "batches": list(dict.fromkeys(batches)), "repeats": repeats, "warmup": warmup, "loads": LOADS}


class _Handler(SimpleHTTPRequestHandler):
    """The page, onnxruntime-web's three files, the models and request.json; nothing else."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript", ".js": "text/javascript",
                      ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".ort": "application/octet-stream"}

    def __init__(self, *args, model_dir: Path, request: bytes, **kwargs):
        self.model_dir, self.request_json = model_dir, request
        super().__init__(*args, directory=str(WEB_DIR), **kwargs)

    def translate_path(self, path: str) -> str:
        path = urlsplit(path).path
        if path in ("/", "/index.html", "/app.mjs"):
            return str(WEB_DIR / (path.lstrip("/") or "index.html"))
        folder, _, name = path.lstrip("/").partition("/")
        if folder == "ort" and name in ORT_FILES:
            return str(ORT_DIST / name)
        if folder == "models" and name and "/" not in name and not name.startswith("."):
            return str(self.model_dir / name)
        return str(WEB_DIR / "not-served")

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/request.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.request_json)))
            self.end_headers()
            self.wfile.write(self.request_json)
            return
        super().do_GET()

    def end_headers(self) -> None:
        # Cross-origin isolation: SharedArrayBuffer (WASM threads) and the 5 us timer.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002  (the base class's name)
        pass


@contextmanager
def page_server(model_dir: Path, request: dict, port: int = 0):
    """The page served on 127.0.0.1 (a free port unless given) from a thread; yields its URL and
    always stops the server."""
    handler = partial(_Handler, model_dir=Path(model_dir), request=json.dumps(request).encode())
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="deploy-web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def headless_chromium():
    """Selenium driving Debian's Chromium through Debian's chromedriver; Selenium Manager, which would
    try to download a driver, is never asked. The browser is always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    if found is None:
        raise RuntimeError(f"no Chromium with chromedriver: {BROWSER_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    os.environ.setdefault("SE_OFFLINE", "true")
    # Chromium leaves its singleton folders in TMPDIR after quit: give it (profile included) a
    # folder of ours, removed with everything it wrote.
    with tempfile.TemporaryDirectory(prefix="fourways-chromium-", ignore_cleanup_errors=True) as scratch:
        options.add_argument(f"--user-data-dir={scratch}/profile")
        service = Service(found[1], env={**os.environ, "TMPDIR": scratch})
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()


def run_page(driver, url: str, threads: int, timeout_s: float, screenshot: Path | None = None) -> dict:
    """Open the page with `threads` WASM threads, wait until it is done, return window.fourways."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}?threads={threads}")
    found = WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(
        lambda d: d.execute_script("const s = window.fourways; return s && s.status !== 'running' ? s : null;"))
    if screenshot is not None:
        # the whole page: the window grows by what the page is taller than the viewport
        page, viewport = driver.execute_script("return [document.documentElement.scrollHeight, window.innerHeight];")
        if page > viewport:
            driver.set_window_size(WINDOW[0], driver.get_window_size()["height"] + page - viewport)
        driver.save_screenshot(str(screenshot))
    if found["status"] != "done":
        raise RuntimeError(f"the page failed: {found.get('error', 'no message')}")
    return found


def serve_in_browser(model_dir: Path, models: list[Path], x: np.ndarray, thread_counts: tuple[int, ...],
                     repeats: int, warmup: int, timeout_s: float, screenshot: Path | None = None) -> dict[int, dict]:
    """Each thread count's page result ({threads: window.fourways}) for the models on x[:1] and x;
    the screenshot, if asked, is of the first thread count's page."""
    request = page_request(models, x, (1, len(x)), repeats, warmup)
    found = {}
    with page_server(model_dir, request) as url, headless_chromium() as driver:
        for threads in dict.fromkeys(thread_counts):
            found[threads] = run_page(driver, url, threads, timeout_s, None if found else screenshot)
    return found


def outputs(page: dict, dtype: str) -> dict[tuple[str, int], np.ndarray]:
    """{(model, batch): y_pred} from a page result; exact, since JSON numbers carry float32 and float64."""
    return {(m["name"], b["batch"]): np.array(b["data"], dtype=dtype).reshape(b["dims"])
            for m in page["models"] for b in m["batches"]}  # a model that failed has no batches


def main(argv: list[str] | None = None) -> int:
    from common.config import CliParser, ConfigError, add_config_args, config_from_args
    from common.problem import make_serving_batch

    parser = CliParser(prog="python -m deploy.web", description=__doc__.splitlines()[0])
    add_config_args(parser)
    parser.add_argument("--device", choices=["cpu"], default="cpu", help="the page runs on the browser's CPU")
    parser.add_argument("--model-dir", type=Path, required=True, help="the .onnx and .ort files to serve (compare.py "
                        "--deploy --out DIR writes them to DIR/models)")
    parser.add_argument("--port", type=int, default=8000, help="where to serve for your own browser (default 8000)")
    parser.add_argument("--headless", action="store_true", help="run the page in headless Chromium and exit")
    parser.add_argument("--json", type=Path, help="with --headless: write the page's results here")
    parser.add_argument("--screenshot", type=Path, help="with --headless: a PNG of the finished page")
    parser.add_argument("--repeats", type=int, default=200, help="timed samples per model and batch (default 200)")
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    models = models_in(args.model_dir)
    if not models:
        parser.error(f"--model-dir {args.model_dir}: no .onnx or .ort files there (python compare.py --deploy "
                     f"--out DIR writes them to DIR/models)")
    x = make_serving_batch(cfg)
    if args.headless:
        reason = unavailable_reason()
        if reason:
            print(f"python -m deploy.web: error: {reason}", file=sys.stderr)
            return 1
        try:
            pages = serve_in_browser(args.model_dir, models, x, (cfg.threads,), args.repeats, cfg.warmup, 600,
                                     args.screenshot)
        except Exception as exc:  # noqa: BLE001  (the browser's or the page's failure, in one line)
            print(f"python -m deploy.web: error: {exc}", file=sys.stderr)
            return 1
        if args.json:
            args.json.write_text(json.dumps(pages[cfg.threads]))
        for m in pages[cfg.threads]["models"]:
            if m.get("error"):
                print(f"{m['name']:<22} failed: {m['error']}", file=sys.stderr)
            for b in m["batches"]:
                timed = b["times_ms"][1 + cfg.warmup:]
                print(f"{m['name']:<22} batch {b['batch']:>4}: {median(timed) * 1e3:9.1f} us/call, "
                      f"load {m['load_ms']:.1f} ms")
        return 1 if any(m.get("error") for m in pages[cfg.threads]["models"]) else 0
    if not runtime_installed():
        print(f"python -m deploy.web: error: onnxruntime-web is not installed: {NPM_HINT}", file=sys.stderr)
        return 1
    with page_server(args.model_dir, page_request(models, x, (1, len(x)), args.repeats, cfg.warmup),
                     args.port) as url:
        print(f"serving {len(models)} models at {url}?threads={cfg.threads} (Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
