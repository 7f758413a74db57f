// Operations: what keeps a deployed registry within bounds, and tells someone when it is not.
//
//   HTTP API $default stage ── throttled (apiThrottleRate, apiThrottleBurst), access log ── log group (30 days)
//   api function ── reserved concurrency (apiReservedConcurrency, unset: the account's shared pool)
//   verify, gc (asynchronous) ── after Lambda's retries ── on-failure destination ─┐
//   EventBridge rules (gc's schedule, front-door uploads) ── undeliverable events ──┴─ FailureQueue (SQS, 14 days)
//   alarms: API 5xx, each function's errors and throttles, FailureQueue depth ── AlarmTopic (SNS) ── alarmEmail
//
// gc's schedule is declared here rather than as the framework's `schedule` event, which cannot
// give its EventBridge target a dead-letter queue. Parameters are checked in params.cjs.
'use strict';

const { deployment, operations } = require('./params.cjs');

/** SQS's longest message retention (14 days): time to look at a failure before it goes. */
const FAILURE_RETENTION_SECONDS = 1_209_600;
/**
 * CloudWatch alarm period: five minutes. Alarms notify on each change between OK and ALARM; a
 * longer period flips less often (an e-mail each time) while failures come and go.
 */
const ALARM_PERIOD_SECONDS = 300;
/** The functions, by their logical-id prefix (the framework's naming) and name suffix. */
const FUNCTIONS = [
  ['Api', 'api'],
  ['Verify', 'verify'],
  ['Gc', 'gc'],
];

/**
 * One alarm: the metric's sum (or maximum) over five minutes at or above `threshold` once.
 * Missing data (nothing happened) is not breaching, so an idle registry stays OK.
 */
function alarm(d, name, description, { namespace, metric, dimensions, statistic = 'Sum', threshold = 1 }) {
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmName: `${d.service}-${d.stage}-${name}`,
      AlarmDescription: description,
      Namespace: namespace,
      MetricName: metric,
      Dimensions: dimensions,
      Statistic: statistic,
      Period: ALARM_PERIOD_SECONDS,
      EvaluationPeriods: 1,
      Threshold: threshold,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: 'AlarmTopic' }],
      OKActions: [{ Ref: 'AlarmTopic' }],
    },
  };
}

function alarms(d) {
  const resources = {
    // HTTP API metrics by ApiId (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html).
    Api5xxAlarm: alarm(d, 'api-5xx', 'Berth: the HTTP API answered 5xx (a function error, timeout or throttle)', {
      namespace: 'AWS/ApiGateway',
      metric: '5xx',
      dimensions: [{ Name: 'ApiId', Value: { Ref: 'HttpApi' } }],
    }),
    FailureQueueAlarm: alarm(d, 'failures', 'Berth: an asynchronous invocation (verify, gc) failed every retry, or EventBridge could not deliver an event; see the failure queue', {
      namespace: 'AWS/SQS',
      metric: 'ApproximateNumberOfMessagesVisible',
      dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['FailureQueue', 'QueueName'] } }],
      statistic: 'Maximum',
    }),
  };
  for (const [id, name] of FUNCTIONS) {
    const dimensions = [{ Name: 'FunctionName', Value: { Ref: `${id}LambdaFunction` } }];
    resources[`${id}ErrorsAlarm`] = alarm(d, `${name}-errors`, `Berth: the ${name} function failed (an exception or a timeout)`, {
      namespace: 'AWS/Lambda',
      metric: 'Errors',
      dimensions,
    });
    resources[`${id}ThrottlesAlarm`] = alarm(d, `${name}-throttles`, `Berth: the ${name} function was throttled (reserved or account concurrency exhausted)`, {
      namespace: 'AWS/Lambda',
      metric: 'Throttles',
      dimensions,
    });
  }
  return resources;
}

/** The EventBridge rules whose undeliverable events go to the failure queue. */
function rulesWithDeadLetters(d) {
  return d.frontDoor ? ['GcSchedule', 'IncomingUploadRule'] : ['GcSchedule'];
}

function resources(d, o, gcSchedule) {
  return {
    FailureQueue: {
      Type: 'AWS::SQS::Queue',
      Properties: { QueueName: `${d.service}-${d.stage}-failures`, MessageRetentionPeriod: FAILURE_RETENTION_SECONDS, SqsManagedSseEnabled: true },
    },
    // EventBridge sends undeliverable events with its own principal, so the queue must let it,
    // for this stack's rules only. (Lambda's destinations use the function's role instead.)
    FailureQueuePolicy: {
      Type: 'AWS::SQS::QueuePolicy',
      Properties: {
        Queues: [{ Ref: 'FailureQueue' }],
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'EventBridgeDeadLetters',
              Effect: 'Allow',
              Principal: { Service: 'events.amazonaws.com' },
              Action: 'sqs:SendMessage',
              Resource: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] },
              Condition: { ArnEquals: { 'aws:SourceArn': rulesWithDeadLetters(d).map((rule) => ({ 'Fn::GetAtt': [rule, 'Arn'] })) } },
            },
          ],
        },
      },
    },
    GcSchedule: {
      Type: 'AWS::Events::Rule',
      Properties: {
        Description: `Berth ${d.stage}: garbage collection`,
        ScheduleExpression: gcSchedule,
        State: 'ENABLED',
        Targets: [{ Id: 'gc', Arn: { 'Fn::GetAtt': ['GcLambdaFunction', 'Arn'] }, Input: '{}', DeadLetterConfig: { Arn: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] } } }],
      },
    },
    GcSchedulePermission: {
      Type: 'AWS::Lambda::Permission',
      Properties: {
        Action: 'lambda:InvokeFunction',
        FunctionName: { 'Fn::GetAtt': ['GcLambdaFunction', 'Arn'] },
        Principal: 'events.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': ['GcSchedule', 'Arn'] },
      },
    },
    AlarmTopic: {
      Type: 'AWS::SNS::Topic',
      Properties: { TopicName: `${d.service}-${d.stage}-alarms`, DisplayName: `Berth ${d.stage} alarms` },
    },
    ...(o.alarmEmail
      ? { AlarmEmail: { Type: 'AWS::SNS::Subscription', Properties: { TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: o.alarmEmail } } }
      : {}),
    ...alarms(d),
  };
}

/** The failure queue as a dead-letter target (frontdoor.cjs gives it to its rule's target). */
const DEAD_LETTER_CONFIG = { Arn: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] } };

module.exports = {
  /** The failure queue, the gc schedule, the alarms and their topic. */
  async resources({ resolveVariable }) {
    const d = await deployment({ resolveVariable });
    const o = await operations({ resolveVariable });
    const gcSchedule = String(await resolveVariable('param:gcSchedule'));
    return {
      Resources: resources(d, o, gcSchedule),
      Outputs: {
        FailureQueueUrl: { Description: 'failed asynchronous invocations (verify, gc) and undeliverable events', Value: { Ref: 'FailureQueue' } },
        AlarmTopicArn: { Description: 'the SNS topic the alarms notify (subscribe more endpoints here)', Value: { Ref: 'AlarmTopic' } },
      },
    };
  },
  /** The HTTP API stage's default route settings: throttling (requests per second, burst). */
  async stageRouteSettings({ resolveVariable }) {
    const o = await operations({ resolveVariable });
    return { DetailedMetricsEnabled: false, ThrottlingRateLimit: o.apiThrottleRate, ThrottlingBurstLimit: o.apiThrottleBurst };
  },
  /** The api function's reserved concurrency (null: none, the account's unreserved pool). */
  async apiReservedConcurrency({ resolveVariable }) {
    return (await operations({ resolveVariable })).apiReservedConcurrency ?? null;
  },
  /** The bucket's versioning: Enabled, or Suspended (which keeps existing versions until they expire). */
  async versioning({ resolveVariable }) {
    return { Status: (await operations({ resolveVariable })).s3Versioning ? 'Enabled' : 'Suspended' };
  },
  /** Days a replaced or deleted object's old version is kept (versioning on, or left from it). */
  async noncurrentDays({ resolveVariable }) {
    return (await operations({ resolveVariable })).s3NoncurrentDays;
  },
  DEAD_LETTER_CONFIG,
};
