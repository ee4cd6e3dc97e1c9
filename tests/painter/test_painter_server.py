"""The painter's HTTP API without a browser: TF Serving's REST shapes, errors, limits, concurrency."""

import base64
import concurrent.futures
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import numpy as np
import pytest
import tensorflow as tf
from painter_helpers import decode_png, expected_image, png16, png_bytes

from spade_tf.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def call(server, method, path, body=None, headers=None):
    """(status, headers, parsed JSON or raw bytes) of one request."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        data = json.loads(data)
    return response.status, response, data


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def predict_png_body(*label_pngs):
    return {"signature_name": "predict_png", "instances": [{"label_png_bytes": b64(p)} for p in label_pngs]}


@pytest.fixture(scope="module")
def saved_predict_png(palette_export):
    _, export_dir = palette_export
    loaded = tf.saved_model.load(os.path.join(export_dir, "serving", "1"))
    return loaded.signatures["predict_png"]


def test_status_and_metadata_have_tf_serving_shapes(painter):
    ok = {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    for path in ("/v1/models/spade", "/v1/models/spade/versions/1"):
        status, _, body = call(painter, "GET", path)
        assert (status, body) == (200, ok)
    status, _, meta = call(painter, "GET", "/v1/models/spade/metadata")
    assert status == 200
    assert meta["model_spec"] == {"name": "spade", "signature_name": "", "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {"serving_default", "predict_png"}
    png = defs["predict_png"]
    assert png["inputs"]["label_png_bytes"]["dtype"] == "DT_STRING"
    assert png["inputs"]["label_png_bytes"]["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}],
                                                                "unknown_rank": False}
    assert png["outputs"]["image_png_bytes"]["dtype"] == "DT_STRING"
    label = defs["serving_default"]["inputs"]["label"]
    assert label["dtype"] == "DT_INT32" and [d["size"] for d in label["tensor_shape"]["dim"]] == ["-1", "64", "64"]
    assert defs["serving_default"]["outputs"]["image"]["dtype"] == "DT_UINT8"
    for path, message in [("/v1/models/other", "Servable not found for request: Latest(other)"),
                          ("/v1/models/spade/versions/2", "Servable not found for request: Specific(spade, 2)")]:
        status, _, body = call(painter, "GET", path)
        assert (status, body) == (404, {"error": message})


def test_predict_png_equals_the_saved_models_signature(painter, saved_predict_png):
    labels = [synthetic.scene_labels(seed) for seed in (1, 2)]
    pngs = [png_bytes(labels[0]), png16(labels[1])]  # 8- and 16-bit ids
    status, response, body = call(painter, "POST", "/v1/models/spade:predict", predict_png_body(*pngs))
    assert status == 200 and response.getheader("Content-Type") == "application/json"
    assert set(body) == {"predictions"} and len(body["predictions"]) == 2
    served = [base64.b64decode(p["b64"]) for p in body["predictions"]]  # one named output: its values, no name
    direct = saved_predict_png(label_png_bytes=tf.constant(pngs))["image_png_bytes"].numpy()
    assert served == list(direct)
    for data, label in zip(served, labels):
        np.testing.assert_array_equal(decode_png(data), expected_image(label))
    # The versioned URL answers the same.
    status, _, again = call(painter, "POST", "/v1/models/spade/versions/1:predict", predict_png_body(*pngs))
    assert status == 200 and again == body


def test_serving_default_in_row_and_columnar_formats(painter):
    label = synthetic.scene_labels(4)
    status, _, rows = call(painter, "POST", "/v1/models/spade:predict", {"instances": [{"label": label.tolist()}]})
    assert status == 200
    np.testing.assert_array_equal(np.array(rows["predictions"][0], np.uint8), expected_image(label))
    status, _, columns = call(painter, "POST", "/v1/models/spade:predict",
                              {"signature_name": "serving_default", "inputs": {"label": [label.tolist()]}})
    assert status == 200 and set(columns) == {"outputs"}
    np.testing.assert_array_equal(np.array(columns["outputs"], np.uint8)[0], expected_image(label))
    status, _, bare = call(painter, "POST", "/v1/models/spade:predict",
                           {"signature_name": "predict_png", "inputs": [b64(png_bytes(label))]})
    assert status == 200 and len(bare["outputs"]) == 1  # a one-input signature takes a bare value
    np.testing.assert_array_equal(decode_png(base64.b64decode(bare["outputs"][0]["b64"])), expected_image(label))


def test_vae_model_takes_its_seed_in_the_columnar_format(vae_painter):
    label = png_bytes(synthetic.scene_labels(7))

    def columnar(seed):
        status, _, body = call(vae_painter, "POST", "/v1/models/spade:predict", {
            "signature_name": "predict_png", "inputs": {"label_png_bytes": [b64(label)], "seed": seed}})
        assert status == 200, body
        return decode_png(base64.b64decode(body["outputs"][0]["b64"]))

    np.testing.assert_array_equal(columnar(1), columnar(1))
    assert np.abs(columnar(1).astype(int) - columnar(2).astype(int)).mean() > 2  # another style sample
    # The row format gives every input a batch dimension: a scalar seed cannot be sent that way.
    status, _, body = call(vae_painter, "POST", "/v1/models/spade:predict", {
        "signature_name": "predict_png", "instances": [{"label_png_bytes": b64(label), "seed": 1}]})
    assert status == 400 and "Input 'seed' must have shape []" in body["error"]
    assert "send it in the columnar format" in body["error"]


GOOD = synthetic.scene_labels(5)


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "JSON Parse error"),
    (b"\xff\xfe", 400, "JSON Parse error"),
    ([1, 2], 400, "must be a JSON object"),
    ({"signature_name": "predict_png"}, 400, "Missing 'inputs' or 'instances' key"),
    ({"signature_name": "predict_png", "instances": []}, 400, "non-empty list"),
    ({"signature_name": "nope", "instances": [1]}, 404, "\"nope\" not found in signature def"),
    (predict_png_body(b"GIF89a not a png"), 400,
     "label_png_bytes: not a PNG; expected an 8- or 16-bit grayscale PNG of class ids, 64x64"),
    (predict_png_body(png_bytes(np.stack([GOOD] * 3, -1).astype(np.uint8))), 400, "got PNG colour type 2"),
    (predict_png_body(png_bytes(GOOD[:32])), 400, "of class ids, 64x64; got 64 x 32"),
    (predict_png_body(png_bytes(np.full((64, 64), 9, np.uint8))), 400,
     "label has class ids out of range (expected 0..7)"),
    ({"signature_name": "predict_png", "instances": [{"label_png_bytes": {"b64": "%%%"}}]}, 400, "invalid base64"),
    ({"signature_name": "predict_png", "instances": [{"label_png_bytes": {"data": "x"}}]}, 400,
     "a binary value must be {\"b64\""),
    ({"signature_name": "predict_png", "instances": [{"label": "x"}]}, 400,
     "expected the inputs ['label_png_bytes']; missing ['label_png_bytes']; unknown ['label']"),
    ({"instances": [{"label": (GOOD + 0.5).tolist()}]}, 400, "expected integers (int32); got float64 values"),
    ({"instances": [{"label": [[1, 2], [3]]}]}, 400, "instances[0].label"),
    ({"signature_name": "predict_png", "inputs": {"label_png_bytes": [["a"], ["b", "c"]]}}, 400,
     "nested lists of different lengths"),
    ({"instances": [{"label": GOOD[:8].tolist()}]}, 400,
     "Input 'label' must have shape [batch, 64, 64]; got [1, 8, 64]"),
    ({"instances": [{"label": GOOD.tolist()}], "inputs": {}}, 400, "Only one of 'inputs' or 'instances'"),
])
def test_bad_requests_answer_json_errors(painter, body, status, message):
    got, response, data = call(painter, "POST", "/v1/models/spade:predict", body)
    assert got == status
    assert response.getheader("Content-Type") == "application/json" and set(data) == {"error"}
    assert message in data["error"], data["error"]
    assert "Traceback" not in data["error"] and "\n" not in data["error"]


def test_body_over_8_mib_is_413(painter):
    body = b"{" + b" " * (8 * 2**20)  # 8 MiB + 1 byte
    status, _, data = call(painter, "POST", "/v1/models/spade:predict", body)
    assert status == 413 and "over 8388608 bytes" in data["error"]
    # curl's Expect: 100-continue: refused before the body is sent.
    host, port = painter.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /v1/models/spade:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 20000000\r\nExpect: 100-continue\r\n\r\n")
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413") and "100 Continue" not in head
    assert call(painter, "GET", "/v1/models/spade")[0] == 200  # still serving


def test_parallel_requests_get_their_own_answers(painter):
    """20 different label maps at once: each answer equals the one it gets alone."""
    bodies = [predict_png_body(png_bytes(synthetic.scene_labels(100 + i))) for i in range(20)]
    sequential = [call(painter, "POST", "/v1/models/spade:predict", b)[2] for b in bodies]
    assert len({json.dumps(s) for s in sequential}) == 20  # all different: a mix-up would show
    start = threading.Barrier(20)

    def one(body):
        start.wait()
        return call(painter, "POST", "/v1/models/spade:predict", body)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        parallel = list(pool.map(one, bodies))
    assert [status for status, _, _ in parallel] == [200] * 20
    assert [data for _, _, data in parallel] == sequential


def test_upload_reads_checks_and_resizes_label_maps(painter):
    big = np.kron(synthetic.scene_labels(6), np.ones((2, 2), np.uint8))  # 128x128: resized (nearest) to 64x64
    status, _, data = call(painter, "POST", "/painter/upload", png16(big))
    assert status == 200 and (data["height"], data["width"]) == (64, 64)
    ids = np.frombuffer(base64.b64decode(data["ids"]), "<u2").reshape(64, 64)
    np.testing.assert_array_equal(ids, synthetic.scene_labels(6))
    for body, message in [
        (png_bytes(np.zeros((64, 64, 3), np.uint8)), "has mode RGB; expected a grayscale PNG of ids"),
        (png_bytes(np.full((64, 64), 12, np.uint8)), "has ids [12] out of range; the model expects 0..7"),
        (b"\xff\xd8\xff\xe0 a jpeg", "not a PNG"),
        (b"\x89PNG\r\n\x1a\n truncated", "The upload cannot be read as a PNG"),
        (png_bytes(np.zeros((1, 5000 * 4000), np.uint8).reshape(4000, 5000)), "The upload is 5000x4000"),
    ]:
        status, _, data = call(painter, "POST", "/painter/upload", body)
        assert status == 400 and message in data["error"], data


def test_page_config_scenes_and_static_files(painter):
    status, _, config = call(painter, "GET", "/painter/config.json")
    assert status == 200
    assert config["predict_url"] == "/v1/models/spade:predict" and config["image_size"] == [64, 64]
    assert [(c["id"], c["name"]) for c in config["classes"]] == list(enumerate(synthetic.CLASS_NAMES))
    assert config["card"]["png_signature"]["name"] == "predict_png" and config["scenes"] is True
    status, _, start = call(painter, "GET", "/painter/start")
    ids = np.frombuffer(base64.b64decode(start["ids"]), "<u2").reshape(64, 64)
    np.testing.assert_array_equal(ids, synthetic.scene_labels(0))
    status, _, scene = call(painter, "GET", "/painter/scene?seed=9")
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(scene["ids"]), "<u2").reshape(64, 64),
                                  synthetic.scene_labels(9))
    status, response, page = call(painter, "GET", "/")
    assert status == 200 and b'id="label-canvas"' in page and b'id="output-image"' in page
    csp = response.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "connect-src 'self';" in csp
    for name in ("painter.js", "png.js", "painter.css"):
        status, response, text = call(painter, "GET", f"/static/{name}")
        assert status == 200 and response.getheader("X-Content-Type-Options") == "nosniff"
        assert not re.search(rb"https?://", text), f"{name} loads something from another origin"
    assert call(painter, "GET", "/static/painter.js")[1].getheader("Content-Type").startswith("text/javascript")


@pytest.mark.parametrize("method, path, headers, status", [
    ("GET", "/static/../model.py", {}, 404),
    ("GET", "/static/%2e%2e/model.py", {}, 404),
    ("GET", "/nothing", {}, 404),
    ("GET", "/v1/models/spade:predict", {}, 405),
    ("POST", "/", {}, 405),
    ("PUT", "/v1/models/spade", {}, 501),
    ("GET", "/v1/models/spade", {"Host": "attacker.example:8000"}, 403),  # DNS rebinding
    ("POST", "/v1/models/spade:predict", {"Transfer-Encoding": "chunked"}, 411),
])
def test_other_requests_answer_json_not_pages(painter, method, path, headers, status):
    got, response, data = call(painter, method, path, headers=headers)
    assert got == status and response.getheader("Content-Type") == "application/json" and "error" in data


def test_serving_url_mode_serves_the_page_only(palette_export):
    """With --serving_url the page calls TF Serving: no model is loaded, /v1 is not answered here."""
    from spade_tf.painter.model import load_painter_model
    from spade_tf.painter.server import PainterServer

    _, export_dir = palette_export
    model = load_painter_model(os.path.join(export_dir, "serving", "1"), load_weights=False)
    assert model.synthesizer is None and model.card["serving_version"] == 1  # the export's card, found above serving/
    server = PainterServer(("127.0.0.1", 0), model, serving_url="http://tfs.internal:8501/",
                           model_name="gaugan", log_requests=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = call(server, "GET", "/painter/config.json")[2]
        assert config["predict_url"] == "http://tfs.internal:8501/v1/models/gaugan:predict"
        assert "connect-src 'self' http://tfs.internal:8501;" in call(server, "GET", "/")[1].getheader(
            "Content-Security-Policy")
        status, _, data = call(server, "POST", "/v1/models/gaugan:predict", predict_png_body(png_bytes(GOOD)))
        assert status == 404 and "sends predictions to http://tfs.internal:8501" in data["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_cli_prints_its_url_and_serves(palette_export):
    from absl import flags

    import spade_tf.painter.__main__  # noqa: F401

    assert "serving_url" not in flags.FLAGS  # flags are defined by run(), not at import

    _, export_dir = palette_export
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen([sys.executable, "-m", "spade_tf.painter", f"--model={export_dir}", "--port=0",
                                "--model_name=gaugan"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "SPADE painter: http://" in line:
                break
        match = re.search(r"SPADE painter: (http://127\.0\.0\.1:\d+/)", "".join(lines))
        assert match, "".join(lines)
        parts = urlsplit(match.group(1))
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("GET", "/v1/models/gaugan")
        assert json.loads(connection.getresponse().read())["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        process.terminate()
        process.wait(30)
    bad = subprocess.run([sys.executable, "-m", "spade_tf.painter", "--model=/nonexistent"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0 and "error: Model path /nonexistent does not exist." in bad.stderr


def test_clade_model_paints_what_its_generator_computes(tmp_path):
    # A real (untrained) CLADE generator behind the painter: the served image is
    # the SavedModel's, which is the Keras generator's within one level.
    import keras

    from spade_tf.config import get_preset
    from spade_tf.export import export_model
    from spade_tf.models import build_generator
    from spade_tf.painter.model import load_painter_model
    from spade_tf.painter.server import PainterServer
    from spade_tf.segmap import make_segmap
    from spade_tf.utils.visualize import to_uint8

    keras.utils.set_random_seed(0)
    config = get_preset("synthetic", ngf=8, norm_mode="clade")
    generator = build_generator(config)
    export_dir = str(tmp_path / "clade")
    export_model(generator, config, export_dir, tflite_variants=[], log=lambda *_: None)
    server = PainterServer(("127.0.0.1", 0), load_painter_model(export_dir, log=lambda *_: None), log_requests=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        label = synthetic.scene_labels(3)
        status, _, body = call(server, "POST", "/v1/models/spade:predict", predict_png_body(png_bytes(label)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert status == 200, body
    served = decode_png(base64.b64decode(body["predictions"][0]["b64"])).astype(int)
    keras_image = to_uint8(np.asarray(generator(
        {"segmap": make_segmap(tf.constant(label[None], tf.int32), None, config)}, training=False)))[0]
    assert np.abs(served - keras_image).max() <= 1
    assert keras_image.std() > 5  # class-dependent, not flat


def test_sean_style_photos_and_styled_predictions(sean_painter, painter):
    from painter_helpers import photo_codes, sean_expected_image, style_photo

    server, mean = sean_painter
    config = server.model.config
    status, _, page_config = call(server, "GET", "/painter/config.json")
    assert page_config["seed_input"] is True
    sean = page_config["sean"]
    assert (sean["style_dim"], sean["channels"], sean["encode"]) == (3, 8, True)
    np.testing.assert_allclose(sean["mean_style_codes"], mean.codes, atol=1e-6)

    photo, labels = style_photo()  # 96x96, resized to 64x64 as synthesize --style_image does
    status, _, answer = call(server, "POST", "/painter/style",
                             {"image": base64.b64encode(png_bytes(photo)).decode(),
                              "label": base64.b64encode(png_bytes(labels)).decode()})
    assert status == 200, answer
    codes, present = photo_codes(photo, labels, config)
    assert answer["present"] == present.tolist() and not present[[synthetic.TREE, synthetic.ROCK]].any()
    np.testing.assert_allclose(answer["codes"], codes, atol=1e-5)

    # The page's request: mean codes where the photo has no region.
    styled = np.where(np.array(answer["present"])[:, None], answer["codes"], mean.codes)
    scene = synthetic.scene_labels(0, 64, 64)
    body = {"signature_name": "predict_png_styles",
            "inputs": {"label_png_bytes": [b64(png_bytes(scene.astype(np.uint8)))], "style_codes": [styled.tolist()],
                       "seed": 0}}
    status, _, out = call(server, "POST", "/v1/models/spade:predict", body)
    assert status == 200, out
    image = decode_png(base64.b64decode(out["outputs"][0]["b64"]))
    assert np.abs(image.astype(int) - sean_expected_image(scene, styled)).max() <= 1

    for body, status, message in [
        ({"image": "not base64!", "label": ""}, 400, 'Expected {"image": <base64 photo>'),
        ({"image": base64.b64encode(png_bytes(photo)).decode(),
          "label": base64.b64encode(png_bytes(photo)).decode()}, 400, "has mode RGB"),
        ({"image": base64.b64encode(png_bytes(photo)).decode(),
          "label": base64.b64encode(png_bytes(labels[:50])).decode()}, 400, "is 96x50 but its photo"),
    ]:
        assert call(server, "POST", "/painter/style", body)[0::2] == (status, {"error": ANY(message)})
    status, _, error = call(painter, "POST", "/painter/style", {"image": "", "label": ""})
    assert status == 400 and "Style photos need a SEAN model" in error["error"]
    assert call(painter, "GET", "/painter/config.json")[2]["sean"] is None


class ANY:
    """Equal to any string containing ``text``."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, str) and self.text in other

    def __repr__(self):
        return f"ANY({self.text!r})"
