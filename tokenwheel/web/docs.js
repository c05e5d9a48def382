// The API reference at /api/docs: Swagger UI 5 (it reads the OpenAPI 3.1 document we
// serve), from the flask-swagger-ui package's files at /api/docs-assets/. Nothing is
// fetched from elsewhere: no validator badge, no remote fonts.

window.ui = window.SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  layout: "BaseLayout",
  validatorUrl: null,
  tryItOutEnabled: false,
  displayRequestDuration: true,
});
