"""The drawing page: ``streamlit run src/mnist_frontend/app.py``.

Draw a digit (white on black, like MNIST); when a stroke ends the page sends the drawing
to the backend and shows the digit, its confidence, all ten probabilities and the 28x28
image the model actually saw. Every backend failure is a short message, never a traceback.
"""

from __future__ import annotations

import hashlib

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mnist_frontend.backend_client import BackendClient, BackendError, BackendStatus, Prediction
from mnist_frontend.config import FrontendSettings
from mnist_frontend.drawing import (
    CanvasExportError,
    UploadError,
    canvas_export_png,
    enlarged,
    example_digit_png,
    png_base64,
    shrink_upload,
)

CANVAS_SIDE = 280

st.set_page_config(page_title="MNIST hub: draw a digit", page_icon="✏️", layout="wide")


@st.cache_resource
def backend_client() -> BackendClient:
    return BackendClient(FrontendSettings())


def show_status(status: BackendStatus) -> None:
    st.sidebar.header("Backend")
    if status.state == "ready":
        st.sidebar.success("Ready")
        info = status.model_info or {}
        st.sidebar.markdown(f"**Model version**  \n`{info.get('version', '?')}`")
        accuracy = info.get("metrics", {}).get("test_accuracy")
        if accuracy is not None:
            st.sidebar.markdown(
                f"**Test accuracy**  \n{accuracy:.2%} on {info.get('data', {}).get('n_test', '?')} held-out images"
            )
        card = backend_client().model_card(info["version"]) if "version" in info else None
        if card:
            with st.sidebar.expander("Model card: intended use, data, metrics, limits"):
                st.markdown(card)
    elif status.state == "not ready":
        st.sidebar.warning(f"Not ready. {status.detail}")
    else:  # unreachable, or an error reply such as a refused API key
        st.sidebar.error(status.detail)
    st.sidebar.markdown(f"Backend URL: `{backend_client().base_url}`")


def predict_once(png: bytes) -> Prediction | BackendError:
    """Each distinct image is sent once; reruns of the page reuse the answer."""
    digest = hashlib.sha256(png).hexdigest()
    cached = st.session_state.get("prediction")
    if cached and cached[0] == digest:
        return cached[1]
    try:
        result: Prediction | BackendError = backend_client().predict_png(png)
    except BackendError as error:
        result = error
    st.session_state["prediction"] = (digest, result)
    return result


def show_prediction(result: Prediction | BackendError) -> None:
    if isinstance(result, BackendError):
        if result.kind in ("input", "rate limited", "not ready"):
            st.warning(result.message)
        else:
            st.error(result.message)
        return
    st.markdown(
        f"<div role='status' aria-live='polite'><p style='font-size:1rem;margin:0'>The model reads</p>"
        f"<p data-testid='predicted-digit' style='font-size:6rem;font-weight:700;line-height:1;margin:0'>"
        f"{result.digit}</p><p style='margin:0'>confidence {result.confidence:.1%}</p></div>",
        unsafe_allow_html=True,
    )
    st.bar_chart(
        {"probability": result.probabilities}, x_label="digit", y_label="probability", height=220, color="#1f77b4"
    )
    if result.input_image is not None:
        # Our own <img> (st.image has no alt text): screen readers get a description.
        st.markdown(
            f"<figure style='margin:0'><img src='data:image/png;base64,{png_base64(enlarged(result.input_image))}' "
            f"width='196' height='196' alt='The 28 by 28 pixel image the model saw, read as {result.digit}'>"
            "<figcaption>What the model saw: your drawing as a 28×28 MNIST image</figcaption></figure>",
            unsafe_allow_html=True,
        )
    show_feedback(result)


FEEDBACK_NOTICE = (
    "A correction keeps the 28×28 image the model saw, its answer and yours: to measure the "
    "model on real drawings and, once reviewed, to train the next one. Not your upload, not your address."
)


MISSED_CLICK = (
    "A new answer replaced the one you judged before your click arrived: nothing was saved. Was this one right?"
)


def is_latest(prediction_id: str) -> bool:
    """Whether ``prediction_id`` is the page's newest answer. While a new answer is being drawn,
    the previous one's buttons stay on screen (greyed) and clickable for a moment: a click there
    must not be saved as a verdict on an image the person no longer sees."""
    cached = st.session_state.get("prediction")
    return cached is not None and isinstance(cached[1], Prediction) and cached[1].prediction_id == prediction_id


def show_feedback(prediction: Prediction) -> None:
    """One click says the answer was right, or which digit it really was (a second click replaces it)."""
    prediction_id = prediction.prediction_id
    if prediction_id is None:
        return  # this backend takes no corrections
    given = st.session_state.setdefault("feedback", {})

    def answer(label: int) -> None:
        if is_latest(prediction_id):
            given[prediction_id] = send_feedback(prediction, label)
        else:
            st.session_state["missed_click"] = True

    def wrong() -> None:
        chosen = st.session_state.get(f"wrong-{prediction_id}")
        if chosen is not None:
            answer(int(chosen))

    st.markdown("**Was that right?**")
    st.button("Right", key=f"right-{prediction_id}", type="primary", on_click=answer, args=(prediction.digit,))
    st.pills("Wrong — it was", [str(digit) for digit in range(10)], key=f"wrong-{prediction_id}", on_change=wrong)
    sent = given.get(prediction_id)
    missed = st.session_state.pop("missed_click", False)
    if isinstance(sent, BackendError):
        st.warning(sent.message)
    elif sent is not None:
        st.success(sent)
    elif missed:
        st.info(MISSED_CLICK)
    # Ordinary text colour: the caption's grey is below WCAG's contrast minimum on white.
    st.markdown(f"<p style='font-size:0.875rem;margin:0'>{FEEDBACK_NOTICE}</p>", unsafe_allow_html=True)


def send_feedback(prediction: Prediction, label: int) -> str | BackendError:
    try:
        status = backend_client().send_feedback(prediction, label)
    except BackendError as error:
        return error
    said = "right" if label == prediction.digit else f"a {label}, not a {prediction.digit}"
    again = " (your earlier answer was replaced)" if status == "updated" else ""
    return f"Thank you! Saved: it was {said}{again}."


def main() -> None:
    status = backend_client().status()
    show_status(status)
    stroke_width = st.sidebar.slider("Pen width", min_value=8, max_value=40, value=20, step=2)

    st.title("Draw a digit")
    st.markdown("White ink on black, like the MNIST images the model learned from. Draw one digit, 0 to 9.")
    if status.state != "ready":
        st.error(f"Predictions are unavailable: {status.detail}")

    left, right = st.columns([1, 1], gap="large")
    with left:
        st.markdown("&nbsp;")  # room for the canvas's own toolbar (undo, redo, delete), drawn above it
        st.session_state.setdefault("canvas_generation", 0)
        canvas = st_canvas(
            stroke_width=stroke_width,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=CANVAS_SIDE,
            width=CANVAS_SIDE,
            drawing_mode="freedraw",
            update_streamlit=True,
            return_image_data=True,
            key=f"canvas-{st.session_state['canvas_generation']}",
        )
        if st.button("Clear the canvas", type="secondary"):
            st.session_state["canvas_generation"] += 1
            st.session_state.pop("prediction", None)
            st.rerun()
        upload = st.file_uploader("…or upload a PNG/JPEG of a digit", type=["png", "jpg", "jpeg"])
        example = st.selectbox("…or try a real MNIST test digit", ["(none)", *map(str, range(10))], key="example_digit")

    input_error = None
    if upload is not None:
        try:
            png = shrink_upload(upload.getvalue())
        except UploadError as error:
            png, input_error = None, str(error)
    elif example != "(none)":
        png = example_digit_png(int(example))
    else:
        try:  # the PNG bytes, checked before decoding: never the component's own image_data decode
            png = canvas_export_png(canvas.image_bytes, CANVAS_SIDE)
        except CanvasExportError as error:
            png, input_error = None, str(error)

    with right:
        st.subheader("Prediction")
        if input_error:
            st.warning(input_error)
        elif png is None:
            st.info("Draw a digit on the canvas: the prediction appears when you lift the pen.")
        elif status.state == "unreachable":
            st.error(status.detail)
        else:
            show_prediction(predict_once(png))


main()
