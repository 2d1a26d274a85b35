// The operators' workbook: lag per account, calls against the budget, changes per run, failures
// and quarantines, webhook latency from delivery to organization. The template is workbook.json
// beside this file; its queries use only names shared/telemetry/names.py emits (tested).

@description('Region of the workbook.')
param location string

@description('Tags for the workbook.')
param tags object = {}

@description('Resource id of the Application Insights component the queries read.')
param applicationInsightsId string

@description('Shown in the portal\'s workbook gallery.')
param displayName string = 'Partner Center organization sync'

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'pcsync-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: loadTextContent('workbook.json')
    version: '1.0'
  }
}

output workbookId string = workbook.id
