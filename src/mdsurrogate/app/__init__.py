"""The web app: the nanoHUB "Ions in nanoconfinement" tool rebuilt with Panel (`mdsurrogate app`).

`core` holds the logic (inputs, ML answers, MD runs in child processes, Auto, downloads), `ui` the page,
`mdworker` the process one MD run lives in. See docs/app.md.
"""
