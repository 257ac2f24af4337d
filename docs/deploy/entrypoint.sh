#!/bin/sh
# Entry point of a container image that runs django_dbq workers, and other
# manage.py commands with the same image:
#
#   entrypoint.sh                          python manage.py worker
#   entrypoint.sh --concurrency 4          python manage.py worker --concurrency 4
#   entrypoint.sh worker emails --grace 25 python manage.py worker emails --grace 25
#   entrypoint.sh delete_old_jobs --hours 24
#
# Environment:
#   DBQ_MIGRATE=1    run "manage.py migrate --noinput" first (default 0; with many
#                    replicas, migrate once per release instead: see the docs)
#   DBQ_PYTHON       the interpreter (default: python)
#   DBQ_MANAGE_PY    the project's manage.py (default: manage.py, in the working directory)
#
# The command is started with exec: it replaces this shell and keeps its process id
# (1 in a container), so SIGTERM from "docker stop" or Kubernetes reaches the worker
# itself. The worker then stops claiming, lets running jobs finish within --grace
# seconds, hands back the rest and exits 0.
set -eu

python=${DBQ_PYTHON:-python}
manage=${DBQ_MANAGE_PY:-manage.py}

case ${1:-} in
    "" | -*) set -- worker "$@" ;;
esac

case ${DBQ_MIGRATE:-0} in
    1 | true | yes) "$python" "$manage" migrate --noinput ;;
    0 | false | no | "") ;;
    *)
        echo "entrypoint.sh: DBQ_MIGRATE must be 1 or 0, not '$DBQ_MIGRATE'" >&2
        exit 2
        ;;
esac

exec "$python" "$manage" "$@"
