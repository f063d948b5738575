import streamlit as st

st.title("Prompting")
st.info("This page is being built (issue 3).")
