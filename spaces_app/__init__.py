"""The Gradio Space that browses, compares and explains SpEAT results (`speat space`, or a Hugging Face Space).

The folder separates data, table and view: `sources` (where records come from) -> `store` (the current records)
-> `rows` (records -> tidy rows and the leaderboard; `columns` defines its columns) and `series` (the curves) ->
`plots`, `detail`, `reference`, `uploads`, `model_runs` -> `views` (outputs per control) -> `app` (composition).
Texts live in `about`.
"""
