// Imported first by the entry points: ES imports are evaluated before the importing module's body,
// so the variable must be set in a module of its own to be in place before the SDK loads.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
