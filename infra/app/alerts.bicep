// Alert rules for the organization sync (docs/operations.md says what each means and what to do).
// Queries read the Application Insights component (classic tables: customMetrics, dependencies);
// the silence rule reads the Log Analytics workspace behind it (AppMetrics). Every pcsync.* name
// is one shared/telemetry/names.py emits: tests/telemetry/test_infra_queries.py checks.

@description('Region of the alert rules.')
param location string

@description('Tags for every rule.')
param tags object = {}

@description('Resource id of the Application Insights component the app exports to.')
param applicationInsightsId string

@description('Resource id of the Log Analytics workspace behind that component.')
param logAnalyticsWorkspaceId string

@description('Resource id of the action group that is notified.')
param actionGroupId string

@description('Minutes between incremental syncs (INCREMENTAL_SYNC_SCHEDULE): lag over two intervals alerts.')
@minValue(1)
param incrementalIntervalMinutes int = 5

@description('Prefix of the rules\' names.')
param namePrefix string = 'pcsync'

var lagThresholdSeconds = incrementalIntervalMinutes * 2 * 60

// A run ended failed (or was found abandoned): its account, mode and how many.
var failedRunQuery = '''
customMetrics
| where name == "pcsync.runs"
| extend outcome = tostring(customDimensions["pcsync.outcome"])
| where outcome in ("failed", "abandoned")
| extend account = tostring(customDimensions["pcsync.account"]), mode = tostring(customDimensions["pcsync.mode"])
| summarize failedRuns = sum(valueSum) by account, mode
| where failedRuns > 0
'''

// Seconds since the last completed incremental run, per account (the gauge is read every minute).
var lagQuery = '''
customMetrics
| where name == "pcsync.sync.lag"
| where tostring(customDimensions["pcsync.mode"]) == "incremental"
| extend account = tostring(customDimensions["pcsync.account"])
| summarize lagSeconds = max(value) by account
| where lagSeconds > thresholdSeconds
'''

// Organization events wait for the topic longer than a few minutes (docs/events.md).
var publishingLagQuery = '''
customMetrics
| where name == "pcsync.events.publishing_lag"
| extend account = tostring(customDimensions["pcsync.account"])
| summarize lagSeconds = max(valueMax) by account
| where lagSeconds > 300
'''

// A held mass ending waits for an operator's approve or reject.
var heldQuery = '''
customMetrics
| where name == "pcsync.endings.held"
| extend account = tostring(customDimensions["pcsync.account"])
| summarize held = max(value) by account
| where held > 0
'''

// More customers quarantined at the end of the window than at its start.
var quarantineQuery = '''
customMetrics
| where name == "pcsync.customers.quarantined"
| extend account = tostring(customDimensions["pcsync.account"])
| summarize (firstAt, first) = arg_min(timestamp, value), (lastAt, last) = arg_max(timestamp, value) by account
| where last > first
'''

// Sync units parked in the poison queue (queue dispatch).
var parkedQuery = '''
customMetrics
| where name == "pcsync.units.parked"
| extend account = tostring(customDimensions["pcsync.account"])
| summarize parked = max(value) by account
| where parked > 0
'''

// Webhook events whose processing failed.
var webhookQuery = '''
customMetrics
| where name == "pcsync.webhook_events.failed"
| extend account = tostring(customDimensions["pcsync.account"])
| summarize failedEvents = max(value) by account
| where failedEvents > 0
'''

// The state gauges stopped arriving: no instance is running, or export is broken.
var silenceQuery = '''
AppMetrics
| where Name == "pcsync.sync.lag"
| summarize points = count()
| where points == 0
'''

var accountDimension = [
  {
    name: 'account'
    operator: 'Include'
    values: [ '*' ]
  }
]

var rules = [
  {
    name: 'failed-run'
    displayName: 'Partner Center sync: a run failed'
    description: 'A sync run of an account failed. See docs/operations.md#a-run-failed.'
    severity: 1
    scope: applicationInsightsId
    query: failedRunQuery
    frequency: 'PT5M'
    window: 'PT15M'
    dimensions: accountDimension
  }
  {
    name: 'sync-lag'
    displayName: 'Partner Center sync: lag over two incremental intervals'
    description: 'No incremental run of an account completed for two intervals. See docs/operations.md#sync-lag.'
    severity: 2
    scope: applicationInsightsId
    query: 'let thresholdSeconds = ${lagThresholdSeconds};${lagQuery}'
    frequency: 'PT5M'
    window: 'PT10M'
    dimensions: accountDimension
  }
  {
    name: 'events-publishing-lag'
    displayName: 'Partner Center sync: organization events not published for over 5 minutes'
    description: 'Changes wait in the event outbox: the topic refuses or the identity lacks EventGrid Data Sender. See docs/events.md#operating-it.'
    severity: 2
    scope: applicationInsightsId
    query: publishingLagQuery
    frequency: 'PT5M'
    window: 'PT15M'
    dimensions: accountDimension
  }
  {
    name: 'held-ending'
    displayName: 'Partner Center sync: a mass ending waits for an operator'
    description: 'The deletion guard held a mass ending. See docs/operations.md#held-ending.'
    severity: 2
    scope: applicationInsightsId
    query: heldQuery
    frequency: 'PT15M'
    window: 'PT15M'
    dimensions: accountDimension
  }
  {
    name: 'quarantines-growing'
    displayName: 'Partner Center sync: quarantined customers growing'
    description: 'More customers were quarantined within the hour. See docs/operations.md#quarantines-growing.'
    severity: 3
    scope: applicationInsightsId
    query: quarantineQuery
    frequency: 'PT15M'
    window: 'PT1H'
    dimensions: accountDimension
  }
  {
    name: 'parked-units'
    displayName: 'Partner Center sync: sync units parked'
    description: 'Sync units were parked in the poison queue. See docs/operations.md#parked-units.'
    severity: 2
    scope: applicationInsightsId
    query: parkedQuery
    frequency: 'PT5M'
    window: 'PT15M'
    dimensions: accountDimension
  }
  {
    name: 'webhook-failing'
    displayName: 'Partner Center sync: webhook events failing'
    description: 'Webhook events failed processing. See docs/operations.md#webhook-events-failing.'
    severity: 3
    scope: applicationInsightsId
    query: webhookQuery
    frequency: 'PT5M'
    window: 'PT15M'
    dimensions: accountDimension
  }
  {
    name: 'telemetry-silent'
    displayName: 'Partner Center sync: no telemetry'
    description: 'The sync stopped reporting its state. See docs/operations.md#no-telemetry.'
    severity: 1
    scope: logAnalyticsWorkspaceId
    query: silenceQuery
    frequency: 'PT15M'
    window: 'PT30M'
    dimensions: []
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [for rule in rules: {
  name: '${namePrefix}-${rule.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      rule.scope
    ]
    evaluationFrequency: rule.frequency
    windowSize: rule.window
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: rule.dimensions
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroupId
      ]
    }
  }
}]

output alertRuleIds array = [for (rule, i) in rules: alertRules[i].id]
