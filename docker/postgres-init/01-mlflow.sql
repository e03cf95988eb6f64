-- Run once by the postgres image on its first start (empty data volume): the MLflow
-- tracking server keeps its runs in a database of its own, next to the study database
-- (POSTGRES_DB). On an existing volume, create it by hand:
--   docker compose exec postgres psql -U sweep -d postgres -c "CREATE DATABASE mlflow;"
-- (with your POSTGRES_USER in place of sweep).
CREATE DATABASE mlflow;
