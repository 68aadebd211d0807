"""`rip demo`: try the recursion on one picture in the browser, each run an ordinary configuration run.

`app.build_app` makes the Gradio page over a `live.DemoRunner`, which drives
`rip.runner.run_experiment` through its observer; `cli.demo` serves it. `choices` says what this
machine can run without a download, `uploads` keeps uploaded pictures as image sets, `views`
draws what the page shows. Needs the `demo` extra (gradio).
"""
