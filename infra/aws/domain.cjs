// The registry's address: with --param="domain=registry.example.com" and
// --param="certificateArn=arn:aws:acm:<region>:<account>:certificate/<id>" (a certificate for the
// domain in the stack's region), an API Gateway custom domain mapped to the HTTP API, plus an alias
// record when --param="hostedZoneId=Z…" names the Route 53 zone of the domain. Without them the
// stack has none of these resources and the registry lives on the API's default endpoint; registry
// URLs and token realms are built from each request's Host, so both work.
//
// Generated here rather than listed with CloudFormation Conditions so that a stack without a
// domain carries no half-empty resources (cfn-lint rejects an empty certificate ARN even in a
// resource whose condition is false) and no conditions that are constant.
'use strict';

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const CERTIFICATE = /^arn:aws[a-zA-Z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/.+$/;
const HOSTED_ZONE = /^Z[A-Z0-9]{1,31}$/;

module.exports = async ({ resolveVariable }) => {
  const domain = String((await resolveVariable('param:domain')) ?? '').toLowerCase();
  const certificateArn = String((await resolveVariable('param:certificateArn')) ?? '');
  const hostedZoneId = String((await resolveVariable('param:hostedZoneId')) ?? '');

  const defaultEndpoint = { 'Fn::Sub': 'https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}' };
  if (!domain) {
    if (certificateArn || hostedZoneId) throw new Error('certificateArn and hostedZoneId only make sense with --param="domain=<registry host name>"');
    return { Outputs: { RegistryUrl: { Description: 'where clients reach the registry', Value: defaultEndpoint } } };
  }
  if (!DOMAIN.test(domain)) throw new Error(`--param="domain=${domain}" is not a host name`);
  if (!CERTIFICATE.test(certificateArn)) {
    throw new Error('--param="domain=…" needs --param="certificateArn=arn:aws:acm:<region>:<account>:certificate/<id>", an ACM certificate for the domain in the stack\'s region');
  }
  // A REGIONAL custom domain takes a certificate from the API's own region.
  const region = String(await resolveVariable('self:provider.region'));
  const certificateRegion = certificateArn.split(':')[3];
  if (certificateRegion !== region) {
    throw new Error(`the certificate is in ${certificateRegion}, the stack in ${region}: a regional custom domain needs an ACM certificate in the stack's region`);
  }
  if (hostedZoneId && !HOSTED_ZONE.test(hostedZoneId)) throw new Error(`--param="hostedZoneId=${hostedZoneId}" is not a Route 53 hosted zone id`);

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
};
