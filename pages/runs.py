import streamlit as st

st.title("Runs")
st.info("This page is being built (issue 4).")
