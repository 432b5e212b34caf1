"""Landing page: what the tool does, and a one-click start on a sample photo."""

import streamlit as st

from ui.quickstart import request_quickstart

st.title("See why your image classifier decided")
st.markdown(
    "This dashboard explains the predictions of deep-learning image classifiers: it shows which pixels "
    "and regions pushed a model towards a class, with Grad-CAM, gradients, Integrated Gradients, LIME, "
    "SHAP and occlusion. Bring your own PyTorch model or use one from the zoo, and every picture you see "
    "can be recomputed from the command line."
)
if st.button("Explain a sample photo", type="primary", icon=":material/play_arrow:"):
    request_quickstart()
    st.switch_page("views/image.py")
st.caption("Runs Grad-CAM with EfficientNet-Lite0 (ImageNet) on a sample photo; no upload needed.")

st.divider()
c1, c2, c3 = st.columns(3)
c1.markdown("**1. Pick a model**  \nA zoo model, or upload TorchScript, a .pt2 program, or a state_dict "
            "with its architecture.")
c2.markdown("**2. Pick an image and a method**  \nA sample or your own photo; each method's settings "
            "come with their valid ranges.")
c3.markdown("**3. Compare and share**  \nSeveral methods side by side, predictions with probabilities, "
            "PNG/NumPy downloads and the command that reproduces them.")
