"""Hydra's joblib launcher, registered under its name (hydra/launcher=joblib) by imdb_exp.sweeps.launchers.

A Ctrl-C that reaches a worker with no job to run ends that worker, and joblib then fails its whole
pool ("A task has failed to un-serialize"), a failure Hydra reports with a traceback and exit status
1. When the sweep holds a SIGINT (imdb_exp.sweeps.stopping), that failure is the SIGINT: raised as
it, the sweep ends KILLED with its table, and the command says so in one line, exit status 130.
"""

from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher


class StoppableJoblibLauncher(JoblibLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from imdb_exp.sweeps import stopping

        try:
            return super().launch(job_overrides, initial_job_idx)
        except Exception as err:
            if (held := stopping.held_signal()) is None:
                raise
            raise held from err
