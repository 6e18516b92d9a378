"""Download one model through the backend worker: a job like any other (one at a time, progress in the panel
and in the Models section, cancel with the panel's Cancel button)."""

from __future__ import annotations

from . import job_runner, worker_client


def download_request(request_id: str, card, options):
    from ..backend.worker.messages import DownloadModelJob, JobSettings

    fields = {"key": card.key, "accept_sam3_license": options.accept_sam3_license, "hf_token": options.hf_token or None}
    return DownloadModelJob(id=request_id, request=fields, settings=JobSettings(offline=False))


def start_model_download(card, context) -> job_runner.Job:
    """Start the download job; raises RuntimeError while another job runs (job_runner.BUSY_MESSAGE)."""
    from ..properties.scene_settings import read_addon_options

    options = read_addon_options(context)
    scene_name = context.scene.name

    def on_finish(stage: str) -> None:
        job_runner.tag_sidebar_redraw()
        for window in context.window_manager.windows:  # the Preferences window shows the new state
            for area in window.screen.areas:
                area.tag_redraw()

    job = worker_client.make_worker_job(context, "download", lambda request_id: download_request(request_id, card,
                                                                                                  options),
                                        lambda outcome: outcome, lambda outcome: None, scene_name,
                                        on_finish=on_finish)
    job.download_key = card.key
    job_runner.start_job(job, context.scene.image_to_3d)
    if job_runner.blocks_until_done():
        job_runner.run_to_end(job)
    return job


