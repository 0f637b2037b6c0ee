"""Wire formats, sans-IO: request mappers, stream decoders and encoders, no aiohttp or asyncio."""
