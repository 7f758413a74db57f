// The registry's address.
//
// With the front door (the default, infra/aws/frontdoor.cjs) clients use the CloudFront
// distribution: https://<id>.cloudfront.net, or with --param="domain=registry.example.com" and
// --param="certificateArn=arn:aws:acm:us-east-1:<account>:certificate/<id>" (CloudFront takes
// certificates from us-east-1 only) the domain, an alias of the distribution, plus alias records
// (A and AAAA) when --param="hostedZoneId=Z…" names the Route 53 zone of the domain. API Gateway
// stays the distribution's origin on its default endpoint and needs no custom domain.
//
// With --param="frontDoor=false": the registry lives on the API's default endpoint, or on an API
// Gateway custom domain (certificate in the stack's region) mapped to the HTTP API, with an alias
// record when a hosted zone is given. Registry URLs and token realms are built from each
// request's Host (or the X-Forwarded-Host the front door sets); the api function answers only to
// the stack's addresses (`hosts` below, BERTH_HOSTS): the domain, the distribution's domain name
// and the API's default endpoint, so a token's audience is always one of them.
//
// Generated here rather than listed with CloudFormation Conditions so that a stack without a
// domain carries no half-empty resources (cfn-lint rejects an empty certificate ARN even in a
// resource whose condition is false) and no conditions that are constant. Parameters are checked
// in params.cjs.
'use strict';

const { deployment } = require('./params.cjs');

/** Route 53's hosted zone of every CloudFront distribution, for alias records. */
const CLOUDFRONT_HOSTED_ZONE = 'Z2FDTNDATAQYW2';

/** The HTTP API's default endpoint, without scheme. */
const API_ENDPOINT = '${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}';

/**
 * BERTH_HOSTS of the api function: every address of the stack clients may use (the custom domain,
 * the distribution's domain name, the API's default endpoint), comma-separated.
 */
async function hosts({ resolveVariable }) {
  const { frontDoor, domain } = await deployment({ resolveVariable });
  const names = [...(domain ? [domain] : []), ...(frontDoor ? ['${Distribution.DomainName}'] : []), API_ENDPOINT];
  return { 'Fn::Sub': names.join(',') };
}

/** The address resources and outputs. */
async function resources({ resolveVariable }) {
  const { frontDoor, domain, certificateArn, hostedZoneId } = await deployment({ resolveVariable }, { check: ['address'] });
  const defaultEndpoint = { 'Fn::Sub': `https://${API_ENDPOINT}` };

  if (frontDoor) {
    const distributionDomain = { 'Fn::GetAtt': ['Distribution', 'DomainName'] };
    if (!domain) {
      return { Outputs: { RegistryUrl: { Description: 'where clients reach the registry (the CloudFront front door)', Value: { 'Fn::Sub': 'https://${Distribution.DomainName}' } } } };
    }
    const Resources = {};
    if (hostedZoneId) {
      // IPv6 is on for the distribution: an AAAA alias beside the A alias.
      for (const type of ['A', 'AAAA']) {
        Resources[`DnsRecord${type === 'A' ? '' : 'Ipv6'}`] = {
          Type: 'AWS::Route53::RecordSet',
          Properties: {
            HostedZoneId: hostedZoneId,
            Name: domain,
            Type: type,
            AliasTarget: { DNSName: distributionDomain, HostedZoneId: CLOUDFRONT_HOSTED_ZONE },
          },
        };
      }
    }
    return {
      ...(hostedZoneId ? { Resources } : {}),
      Outputs: {
        RegistryUrl: { Description: 'where clients reach the registry (the CloudFront front door)', Value: `https://${domain}` },
        DomainTarget: {
          Description: 'alias / CNAME target for the custom domain (where Route 53 is not used)',
          Value: distributionDomain,
        },
      },
    };
  }

  if (!domain) {
    return { Outputs: { RegistryUrl: { Description: 'where clients reach the registry', Value: defaultEndpoint } } };
  }
  const Resources = {
    DomainName: {
      Type: 'AWS::ApiGatewayV2::DomainName',
      Properties: {
        DomainName: domain,
        DomainNameConfigurations: [{ CertificateArn: certificateArn, EndpointType: 'REGIONAL', SecurityPolicy: 'TLS_1_2' }],
      },
    },
    ApiMapping: {
      Type: 'AWS::ApiGatewayV2::ApiMapping',
      DependsOn: ['HttpApiStage'],
      Properties: { ApiId: { Ref: 'HttpApi' }, DomainName: { Ref: 'DomainName' }, Stage: '$default' },
    },
  };
  if (hostedZoneId) {
    Resources.DnsRecord = {
      Type: 'AWS::Route53::RecordSet',
      Properties: {
        HostedZoneId: hostedZoneId,
        Name: domain,
        Type: 'A',
        AliasTarget: {
          DNSName: { 'Fn::GetAtt': ['DomainName', 'RegionalDomainName'] },
          HostedZoneId: { 'Fn::GetAtt': ['DomainName', 'RegionalHostedZoneId'] },
        },
      },
    };
  }
  return {
    Resources,
    Outputs: {
      RegistryUrl: { Description: 'where clients reach the registry', Value: `https://${domain}` },
      DefaultEndpoint: { Description: "the HTTP API's own endpoint (works as well)", Value: defaultEndpoint },
      DomainTarget: {
        Description: 'alias / CNAME target for the custom domain (where Route 53 is not used)',
        Value: { 'Fn::GetAtt': ['DomainName', 'RegionalDomainName'] },
      },
    },
  };
}

module.exports = { resources, hosts };
