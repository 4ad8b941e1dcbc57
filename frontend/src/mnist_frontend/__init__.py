"""MNIST hub frontend: the Streamlit drawing page."""
