"""The dashboard for people who never open Dagster: a Streamlit app over the marts and `ml`,
reading through the read-only analyst role.

`app.py` is the entry point (`energy dashboard`); `screens/` holds one script per page (not
`pages/`, which Streamlit would list in its own navigation too); `queries.py` the reads (plain
functions over a connection), `figures.py` the Plotly charts (plain functions over frames), and
`reads.py` / `controls.py` what the pages share.
"""

LOAD_BLUE = "#1f77b4"
"""The colour of load in every chart, and the app's accent (sliders, progress bars)."""
