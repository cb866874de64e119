// Starts Swagger UI with the settings the page carries in data-settings (serving/docs.py): no inline script.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  var settings = JSON.parse(root.getAttribute("data-settings"));
  settings.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
  settings.layout = "BaseLayout";
  window.ui = SwaggerUIBundle(settings);
});
