// Starts Swagger UI on the document this gateway serves. A file of its own (not an inline
// script) so the page's Content-Security-Policy can forbid inline scripts. validatorUrl: null
// keeps the page off the network: everything it loads comes from the gateway.
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  displayOperationId: false,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
  tryItOutEnabled: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
