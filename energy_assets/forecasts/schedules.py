"""The live forecast's job and the weather fetch's, and their daily schedules."""

from dagster import DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from energy_assets.forecasts.assets import day_ahead_forecast
from energy_assets.weather.assets import open_meteo_weather

day_ahead_job = define_asset_job("day_ahead_job", selection=[day_ahead_forecast])
weather_job = define_asset_job("weather_job", selection=[open_meteo_weather])


def _daily(name: str, job, cron: str, timezone: str) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING,
    )


def day_ahead_schedule(timezone: str) -> ScheduleDefinition:
    """Refresh the live forecast at 00:15 local time every day: the next window after the
    latest reading, whatever the product's issue time."""
    return _daily("day_ahead_daily", day_ahead_job, "15 0 * * *", timezone)


def weather_schedule(timezone: str) -> ScheduleDefinition:
    """Fetch the weather at 05:30 local time, before the day's forecasts are issued."""
    return _daily("weather_daily", weather_job, "30 5 * * *", timezone)
