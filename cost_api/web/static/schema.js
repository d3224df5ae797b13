/* /schema: starts the vendored Swagger UI on the OpenAPI document the page holds as a JSON data block
 * (no inline script: the page runs under CSP 'self', see cost_api/web/routes/schema.py). */

window.ui = window.SwaggerUIBundle({
  spec: JSON.parse(document.getElementById("openapi").textContent),
  dom_id: "#swagger-container",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [window.SwaggerUIBundle.presets.apis],
});
