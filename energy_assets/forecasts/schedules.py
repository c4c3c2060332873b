"""The live forecast's job and its daily schedule."""

from dagster import DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from energy_assets.forecasts.assets import day_ahead_forecast

day_ahead_job = define_asset_job("day_ahead_job", selection=[day_ahead_forecast])


def day_ahead_schedule(timezone: str) -> ScheduleDefinition:
    """Refresh the live forecast at 00:15 local time every day, just after the default cutoff."""
    return ScheduleDefinition(
        name="day_ahead_daily",
        job=day_ahead_job,
        cron_schedule="15 0 * * *",
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING,
    )
