// App Service Authentication (Easy Auth) for the operators (docs/deploy.md#operators-sign-in):
// Entra ID signs people in; the app authorizes each operator route by app role
// (shared/functions/principal.py). Unauthenticated requests are let through to the app
// (AllowAnonymous) because three kinds of caller cannot sign in and must still reach their
// function: Partner Center's webhook (its signature), the Platform's contact validation (its
// function key), and a browser without a session opening the console (the app sends it to
// /.auth/login/aad). The app answers every other unsigned request 401 itself, as problem+json.

@description('Name of the Function App.')
param functionAppName string

@description('Application (client) id of the operators\' Entra app registration, which defines the app roles Sync.Reader and Sync.Operator.')
param clientId string

@description('Entra tenant of that app registration.')
param tenantId string = tenant().tenantId

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:checkov reads this sites/config resource as a whole site; the site's own settings are in function.bicep
  //checkov:skip=CKV_AZURE_63:checkov reads this sites/config resource as a whole site; the site's own settings are in function.bicep
  //checkov:skip=CKV_AZURE_65:checkov reads this sites/config resource as a whole site; the site's own settings are in function.bicep
  //checkov:skip=CKV_AZURE_66:checkov reads this sites/config resource as a whole site; the site's own settings are in function.bicep
  //checkov:skip=CKV_AZURE_80:checkov reads this sites/config resource as a whole site; the site's own settings are in function.bicep
  //checkov:skip=CKV_AZURE_88:checkov reads this sites/config resource as a whole site; the site's own settings are in function.bicep
  //checkov:skip=CKV_AZURE_222:checkov reads this sites/config resource as a whole site; the site's own settings are in function.bicep
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
        }
        validation: {
          // Browser sessions (ID tokens for the app) and scripts' access tokens for api://<client id>.
          allowedAudiences: [
            clientId
            'api://${clientId}'
          ]
        }
      }
    }
    login: {
      // The app needs the principal App Service passes, never the provider's tokens: none kept.
      tokenStore: {
        enabled: false
      }
      preserveUrlFragmentsForLogins: false
    }
  }
}
