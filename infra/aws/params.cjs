// The deployment parameters (--param="name=value", defaults in serverless.yml), read and checked
// once for every generated part of the template (domain.cjs, frontdoor.cjs), so that a mistake
// stops packaging with an explanation instead of failing half way through a deploy.
'use strict';

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const CERTIFICATE = /^arn:aws[a-zA-Z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/.+$/;
const HOSTED_ZONE = /^Z[A-Z0-9]{1,31}$/;
const PRICE_CLASSES = ['PriceClass_100', 'PriceClass_200', 'PriceClass_All'];
/** An address SNS can send e-mail to (SNS checks it again and asks its owner to confirm). */
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Reads a parameter as a string ('' when unset). */
async function param(resolveVariable, name) {
  const value = await resolveVariable(`param:${name}`);
  return value === undefined || value === null ? '' : String(value);
}

/**
 * A whole number parameter in [min, max]; '' gives the fallback.
 * @returns {number | undefined}
 */
function whole(name, value, min, max, fallback) {
  if (value === '') return fallback;
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < min || number > max) {
    throw new Error(`--param="${name}=${value}" must be a whole number from ${min} to ${max}`);
  }
  return number;
}

function flag(name, value, fallback) {
  const text = value.toLowerCase();
  if (text === '') return fallback;
  if (['true', 'on', 'yes'].includes(text)) return true;
  if (['false', 'off', 'no'].includes(text)) return false;
  throw new Error(`--param="${name}=${value}" must be true or false`);
}

/**
 * The operational parameters (operations.cjs): throttling, reserved concurrency, alarm e-mail,
 * S3 versioning. Limits: API Gateway accepts rate and burst up to the account's quota (10,000
 * requests per second and 5,000 burst by default); a Lambda function can reserve up to the
 * account's concurrency limit (1,000 by default); S3 noncurrent-version expiry takes whole days.
 */
async function operations({ resolveVariable }) {
  const read = (name) => param(resolveVariable, name);
  const alarmEmail = await read('alarmEmail');
  if (alarmEmail && !EMAIL.test(alarmEmail)) throw new Error(`--param="alarmEmail=${alarmEmail}" is not an e-mail address`);
  const apiThrottleRate = whole('apiThrottleRate', await read('apiThrottleRate'), 1, 10_000, 100);
  const apiThrottleBurst = whole('apiThrottleBurst', await read('apiThrottleBurst'), 1, 5_000, 200);
  return {
    apiThrottleRate,
    apiThrottleBurst,
    apiReservedConcurrency: whole('apiReservedConcurrency', await read('apiReservedConcurrency'), 1, 10_000, undefined),
    alarmEmail,
    s3Versioning: flag('s3Versioning', await read('s3Versioning'), false),
    s3NoncurrentDays: whole('s3NoncurrentDays', await read('s3NoncurrentDays'), 1, 3650, 30),
  };
}

/**
 * The parameters. Each part of the template checks what it owns, so that a mistake is reported
 * once: domain.cjs the address (`check: ['address']`), frontdoor.cjs the front door's settings
 * (`['frontDoor']`) and the blob delivery (`['delivery']`).
 * @param {{ resolveVariable: (address: string) => Promise<unknown> }} context
 * @param {{ check?: Array<'address' | 'frontDoor' | 'delivery'> }} [options]
 * @returns {Promise<{service: string, stage: string, region: string, frontDoor: boolean,
 *   domain: string, certificateArn: string, hostedZoneId: string, priceClass: string,
 *   blobDelivery: string, s3Checksum: 'on' | 'off', refuseReplays: boolean}>}
 */
async function deployment({ resolveVariable }, { check = [] } = {}) {
  const service = String(await resolveVariable('self:service'));
  const stage = String(await resolveVariable('sls:stage'));
  const region = String(await resolveVariable('self:provider.region'));
  const frontDoor = flag('frontDoor', await param(resolveVariable, 'frontDoor'), true);
  const domain = (await param(resolveVariable, 'domain')).toLowerCase();
  const certificateArn = await param(resolveVariable, 'certificateArn');
  const hostedZoneId = await param(resolveVariable, 'hostedZoneId');
  const priceClass = (await param(resolveVariable, 'priceClass')) || 'PriceClass_100';
  const blobDelivery = (await param(resolveVariable, 'blobDelivery')) || (frontDoor ? 'frontdoor' : 'redirect');
  const s3ChecksumText = await param(resolveVariable, 's3Checksum');
  const refuseReplaysText = await param(resolveVariable, 'refuseReplays');

  if (check.includes('delivery')) {
    if (!['frontdoor', 'redirect'].includes(blobDelivery)) {
      throw new Error(`--param="blobDelivery=${blobDelivery}" must be frontdoor (signed paths on the registry's host, served by CloudFront from S3) or redirect (presigned S3 URLs)`);
    }
    if (blobDelivery === 'frontdoor' && !frontDoor) {
      throw new Error('--param="blobDelivery=frontdoor" needs the front door; with --param="frontDoor=false" use blobDelivery=redirect');
    }
  }
  const s3Checksum = flag('s3Checksum', s3ChecksumText, false) ? 'on' : 'off';
  // A used upload URL is marked in the KeyValueStore (one billed KeyValueStore API call per upload).
  const refuseReplays = frontDoor && flag('refuseReplays', refuseReplaysText, true);
  if (check.includes('frontDoor')) {
    if (!PRICE_CLASSES.includes(priceClass)) {
      throw new Error(`--param="priceClass=${priceClass}" must be one of ${PRICE_CLASSES.join(', ')}`);
    }
    if (s3Checksum === 'on' && !frontDoor) throw new Error('--param="s3Checksum=on" is a setting of the front door, which --param="frontDoor=false" turns off');
    if (!frontDoor && flag('refuseReplays', refuseReplaysText, false)) throw new Error('--param="refuseReplays=true" is a setting of the front door, which --param="frontDoor=false" turns off');
  }
  if (check.includes('address')) checkAddress({ region, frontDoor, domain, certificateArn, hostedZoneId });
  return { service, stage, region, frontDoor, domain, certificateArn, hostedZoneId, priceClass, blobDelivery, s3Checksum, refuseReplays };
}

function checkAddress({ region, frontDoor, domain, certificateArn, hostedZoneId }) {
  if (!domain) {
    if (certificateArn || hostedZoneId) throw new Error('certificateArn and hostedZoneId only make sense with --param="domain=<registry host name>"');
    return;
  }
  if (!DOMAIN.test(domain)) throw new Error(`--param="domain=${domain}" is not a host name`);
  const where = frontDoor
    ? 'in us-east-1 (CloudFront, the front door, takes certificates from us-east-1 only, whatever the stack\'s region)'
    : 'in the stack\'s region';
  if (!CERTIFICATE.test(certificateArn)) {
    throw new Error(`--param="domain=…" needs --param="certificateArn=arn:aws:acm:<region>:<account>:certificate/<id>", an ACM certificate for the domain ${where}`);
  }
  const certificateRegion = certificateArn.split(':')[3];
  if (frontDoor && certificateRegion !== 'us-east-1') {
    throw new Error(
      `the certificate is in ${certificateRegion}: the custom domain is an alias of the CloudFront distribution, and CloudFront uses ACM certificates from us-east-1 only (whatever the stack's region, ${region}). Request or import the certificate for ${domain} in us-east-1 and pass that ARN, or --param="frontDoor=false" for a regional API Gateway domain`,
    );
  }
  // A REGIONAL API Gateway custom domain takes a certificate from the API's own region.
  if (!frontDoor && certificateRegion !== region) {
    throw new Error(`the certificate is in ${certificateRegion}, the stack in ${region}: a regional custom domain needs an ACM certificate in the stack's region`);
  }
  if (hostedZoneId && !HOSTED_ZONE.test(hostedZoneId)) throw new Error(`--param="hostedZoneId=${hostedZoneId}" is not a Route 53 hosted zone id`);
}

module.exports = { deployment, operations };
