/**
 * The `api` Lambda function: the whole `/v2` surface behind an API Gateway HTTP API.
 * Configuration and clients are built once per container, outside the handler.
 */
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { loadConfig } from './config.js';
import { requestFromEvent, resultFromResponse } from './http/lambda.js';
import { route } from './http/router.js';
import { registryFor } from './wiring.js';

const registry = registryFor(loadConfig());

/** API Gateway HTTP API (payload 2.0) → the router → the HTTP API result. */
export const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>().handler(async (event) =>
  resultFromResponse(await route(registry, requestFromEvent(event))),
);
