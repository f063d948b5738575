import streamlit as st

st.title("Tokenization")
