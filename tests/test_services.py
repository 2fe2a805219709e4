from tests.support.services import S3Server


def test_moto_server_answers_boto3(s3_server: S3Server) -> None:
    s3 = s3_server.client()
    s3.create_bucket(Bucket="probe")
    s3.put_object(Bucket="probe", Key="k", Body=b"hello")
    assert s3.get_object(Bucket="probe", Key="k")["Body"].read() == b"hello"


def test_postgres_database_is_fresh(postgres_dsn: str) -> None:
    import asyncio

    import asyncpg

    async def tables() -> int:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            sql = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    assert asyncio.run(tables()) == 0
