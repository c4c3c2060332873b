"""The weather fetch's job and its daily schedule."""

from dagster import DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from energy_assets.weather.assets import open_meteo_weather

weather_job = define_asset_job("weather_job", selection=[open_meteo_weather])


def weather_schedule(timezone: str) -> ScheduleDefinition:
    """Fetch at 05:30 local time, before the day's forecasts are issued."""
    return ScheduleDefinition(
        name="weather_daily",
        job=weather_job,
        cron_schedule="30 5 * * *",
        execution_timezone=timezone,
        default_status=DefaultScheduleStatus.RUNNING,
    )
