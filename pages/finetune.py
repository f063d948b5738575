import streamlit as st

st.title("Fine-tune")
st.info("This page is being built (issue 4).")
