// Renders the API's own OpenAPI document (served beside this page, same origin).
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", window.location.href).toString(),
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
});
