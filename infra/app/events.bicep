// The Platform's organization events (docs/events.md): an Event Grid custom topic in the
// CloudEvents 1.0 schema, keys disabled, the app's identity as its only sender, and as an example
// a subscription that delivers to a Storage queue the Platform reads.
// Built-in roles: EventGrid Data Sender                d5a91429-5739-47e2-a06b-3470a27159e7  the app, on the topic
//                 Storage Queue Data Message Sender     c6a89b2d-59bc-44d0-9896-0f6e12d7b80a  the topic, on the example queue's account

param name string
param location string
param tags object = {}

@description('Principal (object) id of the app\'s user-assigned identity: granted EventGrid Data Sender on the topic.')
param identityPrincipalId string

@description('Storage account of the example subscription\'s queue; empty: no example subscription.')
param subscriptionStorageAccountName string = ''

@description('Queue the example subscription delivers to.')
param subscriptionQueueName string = 'platform-organization-events'

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'
var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  //checkov:skip=CKV_AZURE_193:The Function App publishes over the public endpoint when it has no virtual network; publishing is Entra-only (keys disabled)
  name: name
  location: location
  tags: tags
  // The topic's own identity delivers to the example subscription's queue (no storage key).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    // Entra ID only: no key or SAS token can publish.
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, identityPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource subscriptionStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (!empty(subscriptionStorageAccountName)) {
  name: empty(subscriptionStorageAccountName) ? 'unused' : subscriptionStorageAccountName
}

resource exampleQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = if (!empty(subscriptionStorageAccountName)) {
  name: '${subscriptionStorage.name}/default/${subscriptionQueueName}'
}

resource topicQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(subscriptionStorageAccountName)) {
  name: guid(subscriptionStorage.id, topic.id, storageQueueDataMessageSender)
  scope: subscriptionStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource exampleSubscription 'Microsoft.EventGrid/topics/eventSubscriptions@2025-02-15' = if (!empty(subscriptionStorageAccountName)) {
  parent: topic
  name: 'platform-queue'
  dependsOn: [
    exampleQueue
    topicQueueSender
  ]
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: subscriptionStorage.id
          queueName: subscriptionQueueName
          queueMessageTimeToLiveInSeconds: -1
        }
      }
    }
    filter: {
      includedEventTypes: [
        'pcsync.organization.created'
        'pcsync.organization.updated'
        'pcsync.organization.ended'
        'pcsync.organization.reactivated'
        'pcsync.organization.excluded'
        'pcsync.organization.included'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output endpoint string = topic.properties.endpoint
output name string = topic.name
