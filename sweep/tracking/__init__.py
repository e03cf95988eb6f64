"""MLflow: the study's and the trials' runs, their links and names, the spool kept while
MLflow is down, and its replay."""
